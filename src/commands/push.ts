import { resolve } from 'node:path';
import { ExitCode, UsageError } from '../errors.ts';
import { push, type PushFormat } from '../publish/push.ts';
import { withSignals } from '../pipeline/signals.ts';
import { parseCommandArgs } from './args.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('push', args, { format: { type: 'string' }, insecure: { type: 'boolean' }, authfile: { type: 'string' } });
  if (positionals.length !== 2) throw new UsageError('push: name one image and one destination', { hint: 'guestforge push out/debian-12-hpc.qcow2 docker://registry.example:5000/vm/debian-12-hpc:1.0' });
  const format = values.format ?? 'containerdisk';
  if (format !== 'containerdisk' && format !== 'oci-artifact') throw new UsageError(`push: --format must be containerdisk or oci-artifact, not "${format}"`);
  const r = await withSignals(() => push(resolve(positionals[0]!), positionals[1]!, { format: format as PushFormat, ...(values.insecure ? { insecure: true } : {}), ...(values.authfile ? { authfile: resolve(values.authfile) } : {}) }));
  process.stdout.write(`pushed ${r.ref} (${r.format}) ${r.digest}\n`);
  return ExitCode.ok;
}
