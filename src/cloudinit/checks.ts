/** The in-guest check scripts, with the pieces they share put in place. */
import { readShipped } from '../util/project.ts';

const unitsMarker = '# @UNITS_CHECK@';

/** A shipped check script (cloud-init/NAME) with cloud-init/units-check.sh in place of its marker line. */
export async function readChecks(name: 'smoke-checks.sh' | 'rehearse-checks.sh'): Promise<string> {
  const [script, units] = await Promise.all([readShipped('cloud-init', name), readShipped('cloud-init', 'units-check.sh')]);
  if (!script.includes(unitsMarker)) throw new Error(`cloud-init/${name} lacks its ${unitsMarker} line`);
  // A function, so `$&`, `$1`… in the shell text are not read as replacement patterns.
  return script.replace(unitsMarker, () => units.trimEnd());
}
