/**
 * The multi-node part of a rehearsal, over the private segment: every pair of VMs reaches the
 * other over SSH by name as the owner (with the owner's key in the NFS home, as on the cluster),
 * and the shipped MPI example runs across all of them from the first with PBS_NODEFILE, judged
 * by its rank lines; with RDMA, it is also tried over UCX on the rxe devices (reported only).
 */
import { join } from 'node:path';
import { shellQuote } from '../exec/run.ts';
import { parseDuration } from '../profile/units.ts';
import { readUntrusted } from '../util/fs.ts';
import { envAssignments } from './job.ts';
import { parseRanks, rankProblem } from './nodes.ts';
import { ssh } from './ssh.ts';
import type { Rehearsal } from './types.ts';
import { seconds } from './types.ts';

/** SSH by name from every VM to every other; adds net.<a>-<b> checks. Whether all pairs work. */
export async function checkPairs(r: Rehearsal): Promise<boolean> {
  let reachable = true;
  for (const a of r.nodes) {
    for (const b of r.nodes) {
      if (a === b) continue;
      const res = await ssh(a.target, `ssh -o BatchMode=yes -o ConnectTimeout=10 ${b.spec!.name} hostname`, 60_000);
      const ok = res.exitCode === 0 && res.stdout.trim() === b.spec!.name;
      if (!ok) reachable = false;
      r.add(`net.${a.spec!.name}-${b.spec!.name}`, ok, ok
        ? `${a.spec!.name} reaches ${b.spec!.name} (${b.spec!.address}) over SSH as ${r.cluster.owner.name}`
        : `${a.spec!.name} cannot reach ${b.spec!.name} at ${b.spec!.address} over SSH as ${r.cluster.owner.name}: ${(res.stderr || res.stdout).trim().split('\n').slice(-2).join(' | ') || `exit ${res.exitCode}`}`);
    }
  }
  return reachable;
}

interface MpiRun { ms: number; output?: string | undefined; problem?: string | undefined }

/** The shipped MPI example from the first VM (optionally with more mpirun options), its output read back from the export and judged by its rank lines. */
async function runMpi(r: Rehearsal, p: { env: Record<string, string>; exportHome: string }, command: string, name: string, extra?: { mpirunArgs: string; limitS: number }): Promise<MpiRun> {
  const ranks = r.nodes.length * r.cluster.vm.cpus; // the node file has one line per slot
  const outName = `${name}-${r.nonce}.out`;
  const env = `${extra ? `MPIRUN_ARGS=${shellQuote([extra.mpirunArgs])} ` : ''}${envAssignments(p.env)}`;
  const t0 = Date.now();
  const res = await ssh(r.nodes[0]!.target, `cd && ${env} ${extra ? `timeout ${extra.limitS} ` : ''}sh -c ${shellQuote([command])} > ${outName} 2>&1`,
    extra ? (extra.limitS + 30) * 1000 : parseDuration(r.cluster.timeouts.job));
  const ms = Date.now() - t0;
  const output = await readUntrusted(join(p.exportHome, outName)); // the guest wrote it
  const problem = res.exitCode !== 0 ? `exit ${res.exitCode}: ${(output ?? res.stderr).trim().split('\n').slice(extra ? -3 : -4).join(' | ')}` : rankProblem(parseRanks(output ?? ''), ranks, r.nodes.map((n) => n.spec!.name));
  return { ms, output, problem };
}

/** The shipped example's rank lines across every VM: the mpi.ranks check (the job is the admin's). */
export async function checkMpiRanks(r: Rehearsal, p: { env: Record<string, string>; exportHome: string }, command: string, reachable: boolean): Promise<void> {
  const ranks = r.nodes.length * r.cluster.vm.cpus;
  r.o.step?.update(`MPI example across ${r.nodes.length} VMs`);
  const mpi = reachable ? await runMpi(r, p, command, 'mpi') : undefined;
  r.report.mpiMs = mpi?.ms ?? 0;
  r.report.mpiOutput = mpi?.output;
  const problem = mpi ? mpi.problem : 'not run: the VMs cannot reach each other (see the net.* checks)';
  r.add('mpi.ranks', problem === undefined, problem === undefined
    ? `mpirun -np ${ranks} --hostfile $PBS_NODEFILE in ${seconds(r.report.mpiMs)}: ${rankLines(r.report.mpiOutput)}`
    : `${command}: ${problem}`, r.report.mpiMs);
}

/** Open MPI over UCX on the rxe devices: a warning at worst, never a failure (TCP is what jobs get). */
export async function checkUcxOnRxe(r: Rehearsal, p: { env: Record<string, string>; exportHome: string }, command: string, devices: [string, string]): Promise<void> {
  r.o.step?.update('MPI over UCX on rxe');
  const ucxArgs = `--mca pml ucx --mca btl ^tcp,openib,uct -x UCX_NET_DEVICES=${devices[0]}:1 -x UCX_TLS=rc,self,sm`;
  const ucx = await runMpi(r, p, command, 'mpi-ucx', { mpirunArgs: ucxArgs, limitS: 90 });
  r.checks.push({ id: 'mpi.ucx-rxe', status: ucx.problem === undefined ? 'pass' : 'warn', detail: ucx.problem === undefined
    ? `Open MPI over UCX on ${devices.join('/')} (${ucxArgs}) in ${seconds(ucx.ms)}: ${rankLines(ucx.output)}`
    : `Open MPI over UCX on rxe did not work (jobs use TCP), after ${seconds(ucx.ms)}: ${ucx.problem}` });
}

const rankLines = (output: string | undefined) => (output ?? '').trim().split('\n').filter((l) => l.startsWith('rank ')).join(' | ');
