/**
 * The job, as the batch system runs it: on the first VM, as its owner over SSH, with Torque's
 * environment and time limit; its streams and exit status read back from the cluster's storage
 * (the NFS exports, as the guest wrote them: no link followed, capped), judged, and kept beside
 * the logs.
 */
import { lstat, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { parseDuration } from '../profile/units.ts';
import { readUntrusted } from '../util/fs.ts';
import { jobCommandLine, judgeJob, parseStatus, tail, torqueJob, type TorqueJob } from './job.ts';
import { ssh } from './ssh.ts';
import type { Rehearsal } from './types.ts';
import { mountPointOf } from './userdata.ts';

/** Runs the cluster file's job on the first VM; adds job.run and nfs.job-output. Returns the job (its environment serves the MPI checks). */
export async function runJob(r: Rehearsal, p: { exportPaths: Record<string, string>; nodeFileName: string }): Promise<TorqueJob> {
  const { o, cluster, log, report } = r;
  const first = r.nodes[0]!;
  const home = mountPointOf(cluster, 'home');
  const ws = mountPointOf(cluster, 'workspace');
  const job = torqueJob({
    name: cluster.job.name, clusterName: cluster.name, nonce: r.nonce, owner: cluster.owner.name, home, workspace: ws,
    nodeFile: posix.join(home, p.nodeFileName), nodes: r.nodes.length, slotsPerNode: cluster.vm.cpus, nodeFileWritten: r.multi,
  });
  o.step?.update(`job ${job.id}: ${cluster.job.command}`);
  log.info(`rehearse: job ${job.id} (${job.name}) on ${first.spec?.name ?? 'the VM'} as ${cluster.owner.name}: ${cluster.job.command}`);
  const t0 = Date.now();
  // The guest ends the job at the limit (timeout: 124); SSH gets 40 s more to bring that back.
  const limitMs = parseDuration(cluster.timeouts.job);
  const ran = await ssh(first.target, jobCommandLine(job, cluster.job.command, Math.ceil(limitMs / 1000)), limitMs + 40_000);
  const wallMs = Date.now() - t0;
  report.jobMs = wallMs;
  report.jobEndMs = Date.now() - first.started;
  // The guest wrote them: no symlink, no FIFO, capped. Copied beside the logs: the exports end with the server.
  const streams = { stdout: join(p.exportPaths.home!, job.stdoutName), stderr: join(p.exportPaths.home!, job.stderrName) };
  const stdout = await readUntrusted(streams.stdout);
  const stderr = await readUntrusted(streams.stderr);
  const statusFile = join(p.exportPaths.workspace!, job.statusName);
  // Past the limit the host's SSH gave up: whatever the workspace says, the job did not end in time.
  const exitCode = ran.timedOut ? undefined : parseStatus(await readUntrusted(statusFile));
  const kept: { stdout?: string; stderr?: string } = {};
  for (const [key, name, text] of [['stdout', job.stdoutName, stdout], ['stderr', job.stderrName, stderr]] as const) {
    const copy = join(o.logDir, name);
    await rm(copy, { force: true }); // a --log-dir used before may hold one of the same name
    if (text === undefined) continue;
    await writeFile(copy, text, { mode: 0o600, flag: 'wx' });
    kept[key] = copy;
  }
  report.jobOutput = stdout;
  const transport = ran.timedOut ? `no answer in ${cluster.timeouts.job} (timeouts.job) and 40 s more`
    : ran.exitCode === 255 ? `SSH failed (exit 255): ${tail(ran.stderr, 2).replaceAll('\n', ' | ') || 'the connection closed'}`
      : `no exit status in the workspace (${job.statusName}; SSH said exit ${ran.exitCode}): could the job's owner write ${ws}?`;
  const verdict = judgeJob({ exitCode, stdout, stderr, wallMs, ...(cluster.job.expect !== undefined ? { expect: cluster.job.expect } : {}), transport, limit: cluster.timeouts.job });
  report.job = {
    id: job.id, name: job.name, command: cluster.job.command, node: first.spec?.name ?? 'the VM',
    ...(exitCode !== undefined ? { exitCode } : {}), wallMs, endMs: report.jobEndMs,
    ...kept, stdoutTail: tail(stdout, 10), stderrTail: tail(stderr, 10), env: job.env,
  };
  r.add('job.run', verdict.ok, `${job.id}: ${verdict.detail}`, wallMs);

  // What the job wrote is on the cluster's storage, owned by the owner's uid.
  // lstat: a symlink the guest left there says nothing about the job (and is not followed).
  const owned = async (path: string) => lstat(path).then((s) => (s.isFile() ? `${s.uid}:${s.gid}` : undefined), () => undefined);
  const want = `${cluster.owner.uid}:${cluster.owner.gid}`;
  const found = [
    [`home/${job.stdoutName}`, await owned(streams.stdout)],
    [`home/${job.stderrName}`, await owned(streams.stderr)],
    [`workspace/${job.statusName}`, await owned(statusFile)],
  ] as const;
  r.add('nfs.job-output', found.every(([, owner]) => owner === want),
    `on the host's exports: ${found.map(([name, owner]) => `${name} ${owner ?? 'missing'}`).join(', ')} (want ${want})`);
  return job;
}
