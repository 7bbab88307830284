/**
 * A job rehearsal: the image booted exactly as a cluster node boots it (the
 * cluster description: cloud-localds seed, machine, CPU, owner, boot-time
 * packages, NFS mounts), then the batch system's part played from the host:
 * SSH in as the job owner with the key in the NFS home, run the job, read its
 * output back from the export. Everything it starts is stopped in `finally`.
 */
import { chmod, lstat, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cluster } from '../cluster/schema.ts';
import { redactUserData, renderCloudConfig } from '../cloudinit/yaml.ts';
import { run, shellQuote } from '../exec/run.ts';
import type { Logger, Step } from '../log.ts';
import type { Layout } from '../policy/layout.ts';
import { parseDuration, parseSize } from '../profile/units.ts';
import type { DiskRef } from '../stages/types.ts';
import { readUntrusted } from '../util/fs.ts';
import { readShipped } from '../util/project.ts';
import { freePort } from '../util/net.ts';
import type { Accel } from '../vm/accel.ts';
import { createOverlay } from '../vm/overlay.ts';
import { startQemu, type VmRunner } from '../vm/qemu.ts';
import { parseSerialLine, SerialTail, type CheckLine } from '../vm/serial.ts';
import { makeExportDir, startNfsServer, type NfsServer } from './nfs.ts';
import { makeKeyPair, ssh, type SshTarget } from './ssh.ts';
import { exportNames, mountPointOf, pseudoOf, rehearsalUserData } from './userdata.ts';

export interface RehearseOptions {
  cluster: Cluster;
  layout: Layout;
  accel: Accel;
  nonce: string;
  workDir: string;
  logDir: string;
  log: Logger;
  signal: AbortSignal;
  step?: Step;
}

export interface RehearsalCheck extends CheckLine {
  status: 'pass' | 'fail' | 'warn';
  seconds?: number;
}

export interface RehearsalReport {
  ok: boolean;
  checks: RehearsalCheck[];
  /** VM start → SSH as the owner works: what the batch system waits for per job. */
  jobReadyMs?: number;
  /** VM start → `cloud-init status --wait` returned. */
  cloudInitDoneMs?: number;
  jobMs?: number;
  jobOutput?: string;
  serialLog: string;
}

/** Pure: the cloud-localds argv; without meta-data it writes instance-id iid-local01 (vTorque). */
export function cloudLocaldsArgs(output: string, userData: string, metaData?: string): string[] {
  return ['cloud-localds', '--disk-format', 'raw', '--filesystem', 'iso9660', output, userData, ...(metaData ? [metaData] : [])];
}

async function prepareExports(dir: string, cluster: Cluster, publicKey: string): Promise<Record<string, string>> {
  const { uid, gid } = cluster.owner;
  const paths = Object.fromEntries(exportNames.map((n) => [n, join(dir, n)]));
  await makeExportDir(paths.home!, uid, gid, 0o755);
  await makeExportDir(join(paths.home!, '.ssh'), uid, gid, 0o700);
  await writeFile(join(paths.home!, '.ssh', 'authorized_keys'), `${publicKey}\n`, { mode: 0o600 });
  await run(['chown', `${uid}:${gid}`, join(paths.home!, '.ssh', 'authorized_keys')]);
  await makeExportDir(paths.workspace!, 0, 0, 0o1777);
  await makeExportDir(paths.software!, 0, 0, 0o755);
  await writeFile(join(paths.software!, 'README'), 'the cluster\'s software share (mounted by guestforge rehearse)\n');
  return paths;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export async function rehearseImage(image: DiskRef, o: RehearseOptions): Promise<RehearsalReport> {
  const { cluster, nonce, log } = o;
  await mkdir(o.workDir, { recursive: true, mode: 0o700 });
  await mkdir(o.logDir, { recursive: true, mode: 0o700 });
  const serialLog = join(o.logDir, 'rehearse-console.log');
  const checks: RehearsalCheck[] = [];
  const report: RehearsalReport = { ok: false, checks, serialLog };
  const add = (id: string, ok: boolean, detail: string, ms?: number) => checks.push({ id, status: ok ? 'pass' : 'fail', detail, ...(ms !== undefined ? { seconds: ms / 1000 } : {}) });

  const keyDir = join(o.workDir, 'ssh');
  await mkdir(keyDir, { recursive: true, mode: 0o700 });
  const { key, publicKey } = await makeKeyPair(keyDir, `guestforge-rehearse-${nonce}`);
  const exportsDir = join(o.workDir, 'exports');
  const exportPaths = await prepareExports(exportsDir, cluster, publicKey);

  let nfs: NfsServer | undefined;
  let vm: VmRunner | undefined;
  try {
    o.step?.update('NFS server');
    nfs = await startNfsServer(join(o.workDir, 'nfs'), exportNames.map((n) => ({ pseudo: pseudoOf(n), path: exportPaths[n]! })), o.signal);
    log.info(`rehearse: nfs-ganesha on 127.0.0.1:${nfs.port} (the guest mounts ${exportNames.map((n) => `${pseudoOf(n)} at ${mountPointOf(cluster, n)}`).join(', ')})`);

    const userData = renderCloudConfig(rehearsalUserData(cluster, { nfsPort: nfs.port, nonce, checks: await readShipped('cloud-init', 'rehearse-checks.sh'), layout: o.layout }));
    const seedDir = join(o.workDir, 'seed');
    await mkdir(seedDir, { recursive: true, mode: 0o700 });
    await writeFile(join(seedDir, 'user-data'), userData, { mode: 0o600 });
    await writeFile(join(o.logDir, 'rehearse-user-data.yaml'), redactUserData(userData), { mode: 0o600 });
    let metaFile: string | undefined;
    if (cluster.seed.instanceId === 'fresh') {
      metaFile = join(seedDir, 'meta-data');
      await writeFile(metaFile, `instance-id: guestforge-rehearse-${nonce}\n`);
    }
    const seed = join(o.workDir, 'seed.img');
    await run(cloudLocaldsArgs(seed, join(seedDir, 'user-data'), metaFile), { timeoutMs: 60_000 });
    await chmod(seed, 0o600);

    const overlay = await createOverlay(image, join(o.workDir, 'rehearse.qcow2'));
    const sshPort = await freePort();
    const target: SshTarget = { port: sshPort, user: cluster.owner.name, key };
    o.step?.update(`booting (${cluster.vm.machine}, ${cluster.vm.cpu}, seed on ${cluster.seed.transport})`);
    const started = Date.now();
    vm = await startQemu({
      disk: overlay.path, diskFormat: 'qcow2', seedIso: seed, seedAsDisk: cluster.seed.transport === 'virtio-disk',
      memoryMiB: Math.floor(parseSize(cluster.vm.memory) / 1024 / 1024), cpus: cluster.vm.cpus, accel: o.accel,
      machine: cluster.vm.machine, cpuModel: cluster.vm.cpu, serialLog, qmpSocket: join(o.workDir, 'qmp.sock'),
      unsafeCache: true, hostForward: { hostPort: sshPort, guestPort: 22 },
    }, 'rehearsal VM');
    log.info(`rehearse: booting the VM (${cluster.vm.machine}, cpu ${cluster.vm.cpu}, seed on ${cluster.seed.transport}, instance-id ${cluster.seed.instanceId === 'fixed' ? 'iid-local01' : 'fresh'}); SSH on 127.0.0.1:${sshPort}`);
    log.detail(`rehearsal VM: ${shellQuote(vm.argv)}`);

    const tail = new SerialTail(serialLog);
    let result: { ok: boolean; at: number } | undefined;
    const readConsole = async () => {
      for (const line of await tail.poll()) {
        log.detail(`console: ${line}`);
        const event = parseSerialLine(line, nonce);
        if (event?.kind === 'check') checks.push(event.check);
        else if (event?.kind === 'result' && !result) result = { ok: event.ok, at: Date.now() };
        else if (/\blogin:\s*$/.test(line)) o.step?.update('login prompt');
      }
    };

    // Job-ready: SSH as the owner works (which needs the NFS home: the key is there).
    const deadline = started + parseDuration(cluster.timeouts.jobReady);
    let why = '';
    while (report.jobReadyMs === undefined) {
      if (o.signal.aborted) throw o.signal.reason;
      await vm.wait(3000);
      await readConsole();
      if (await vm.stopped()) {
        why = `the VM stopped ${(await vm.failure()) ?? 'by itself'}`;
        break;
      }
      const probe = await ssh(target, 'id -un', 15_000);
      if (probe.exitCode === 0 && probe.stdout.trim() === cluster.owner.name) {
        report.jobReadyMs = Date.now() - started;
        break;
      }
      // The in-guest checks have reported and SSH still fails: they say why; waiting longer changes nothing.
      if (result && Date.now() - result.at > 30_000) {
        why = 'the guest finished booting, but SSH as the owner does not work';
        break;
      }
      if (Date.now() > deadline) {
        why = `timed out after ${cluster.timeouts.jobReady}`;
        break;
      }
      o.step?.update(`waiting for SSH as ${cluster.owner.name} (${seconds(Date.now() - started)})`);
    }
    if (report.jobReadyMs !== undefined) {
      add('vm.job-ready', true, `ssh ${cluster.owner.name}@ works ${seconds(report.jobReadyMs)} after VM start`, report.jobReadyMs);
    } else {
      const guestSaid = checks.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.detail}`);
      add('vm.job-ready', false, [why, ...guestSaid, ...(guestSaid.length ? [] : ['last console lines:', ...tail.tail(15)])].join('\n'));
      return report;
    }

    o.step?.update('cloud-init status --wait');
    const status = await ssh(target, 'cloud-init status --wait --long', 15 * 60_000);
    report.cloudInitDoneMs = Date.now() - started;
    // 0 done; 2 degraded (23.4+): recoverable, reported as a warning.
    const statusLine = status.stdout.split('\n').filter((l) => /^(status|errors|recoverable_errors|detail):/.test(l)).join('; ') || status.stderr.trim();
    checks.push({ id: 'cloud-init.done', status: status.exitCode === 0 ? 'pass' : status.exitCode === 2 ? 'warn' : 'fail', detail: `${statusLine} (${seconds(report.cloudInitDoneMs)} after VM start)`, seconds: report.cloudInitDoneMs / 1000 });

    // The in-guest checks run last in runcmd: their result line follows cloud-init's end.
    for (let i = 0; i < 20 && !result; i += 1) {
      await vm.wait(1000);
      await readConsole();
    }
    if (!result) add('rehearse.in-guest-checks', false, 'the checks in runcmd never reported (see the console log)');

    o.step?.update(`job: ${cluster.job.command}`);
    const ws = mountPointOf(cluster, 'workspace');
    const outName = `job-${nonce}.out`;
    const jobLine = `cd && WORKSPACE=${shellQuote([ws])} sh -c ${shellQuote([cluster.job.command])} > ${outName} 2>&1; rc=$?; touch ${shellQuote([ws])}/job-${nonce}.done; exit $rc`;
    const t0 = Date.now();
    const job = await ssh(target, jobLine, parseDuration(cluster.timeouts.job));
    report.jobMs = Date.now() - t0;
    const outFile = join(exportPaths.home!, outName);
    report.jobOutput = await readUntrusted(outFile); // the guest wrote it: no symlink, no FIFO, capped
    const expectOk = cluster.job.expect === undefined || new RegExp(cluster.job.expect).test(report.jobOutput ?? '');
    add('job.run', job.exitCode === 0 && expectOk,
      job.exitCode !== 0 ? `exit ${job.exitCode}: ${(report.jobOutput ?? job.stderr).trim().split('\n').slice(-3).join(' | ')}`
        : expectOk ? `exit 0 in ${seconds(report.jobMs)}: ${(report.jobOutput ?? '').trim().split('\n').join(' | ')}`
          : `output does not match /${cluster.job.expect}/: ${(report.jobOutput ?? '').trim()}`, report.jobMs);

    // What the job wrote is on the cluster's storage, owned by the owner's uid.
    // lstat: a symlink the guest left there says nothing about the job (and is not followed).
    const owned = async (path: string) => lstat(path).then((s) => (s.isFile() ? `${s.uid}:${s.gid}` : undefined), () => undefined);
    const want = `${cluster.owner.uid}:${cluster.owner.gid}`;
    const outOwner = await owned(outFile);
    const doneOwner = await owned(join(exportPaths.workspace!, `job-${nonce}.done`));
    add('nfs.job-output', outOwner === want && doneOwner === want,
      `on the host's exports: home/${outName} ${outOwner ?? 'missing'}, workspace/job-${nonce}.done ${doneOwner ?? 'missing'} (want ${want})`);
    report.ok = checks.every((c) => c.status !== 'fail') && checks.length > 0;
    return report;
  } finally {
    await vm?.stop();
    await nfs?.stop();
    await rm(join(o.workDir, 'rehearse.qcow2'), { force: true });
    await rm(join(o.workDir, 'seed.img'), { force: true });
  }
}
