/** A rehearsal VM's boot plot, fetched over SSH and kept beside the logs when it is what systemd draws (smoke/boot-plot.ts). */

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec/run.ts';
import { bootPlotMaxBytes, bootPlotProblem } from '../smoke/boot-plot.ts';
import { readUntrusted, writeFileAtomic } from '../util/fs.ts';
import { tail } from './job.ts';
import { sshArgs } from './ssh.ts';
import type { NodeVm, Rehearsal } from './types.ts';

/** The command run in the guest: the plot, cut at the most that is read (a guest could send more). */
export const bootPlotCommand = `systemd-analyze plot | head -c ${bootPlotMaxBytes}`;

/** A VM's plot beside the logs, when it is what systemd draws (read capped, written afresh); a warning otherwise. */
export async function keepBootPlot(r: Pick<Rehearsal, 'o' | 'log'>, n: NodeVm): Promise<void> {
  const file = join(r.o.logDir, `rehearse${n.spec ? `-${n.spec.name}` : ''}-boot.svg`);
  const raw = join(r.o.workDir, `boot-plot${n.spec ? `-${n.spec.name}` : ''}.svg`);
  await rm(file, { force: true });
  const plot = await run(sshArgs(n.target, bootPlotCommand), { allowFailure: true, timeoutMs: 120_000, stdoutFile: raw });
  const svg = await readUntrusted(raw, bootPlotMaxBytes);
  await rm(raw, { force: true });
  const problem = plot.exitCode !== 0 ? `exit ${plot.exitCode}: ${tail(plot.stderr, 1)}` : svg === undefined ? 'nothing came back' : bootPlotProblem(svg);
  if (problem) r.log.warn(`rehearse: ${n.spec?.name ?? 'the VM'}'s boot plot not kept: ${problem}`);
  else await writeFileAtomic(file, svg!, 0o600);
}
