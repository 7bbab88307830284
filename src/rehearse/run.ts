/**
 * A job rehearsal: the image booted exactly as a cluster node boots it (the
 * cluster description: cloud-localds seed, machine, CPU, owner, boot-time
 * packages, NFS mounts), then the batch system's part played from the host:
 * SSH in as the job owner with the key in the NFS home, run the job, read its
 * output back from the export. With several nodes, the VMs boot side by
 * side on a private segment (qemu's own sockets over 127.0.0.1), the owner's
 * key in the NFS home lets them reach each other, and an MPI job runs across
 * them from vnode01 with PBS_NODEFILE, plus RDMA verbs between them when the
 * image has vRDMA. Everything it starts is stopped in `finally`.
 */
import { chmod, lstat, mkdir, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { defaultJobCommand, type Cluster } from '../cluster/schema.ts';
import { redactUserData, renderCloudConfig } from '../cloudinit/yaml.ts';
import { readChecks } from '../cloudinit/checks.ts';
import { run, shellQuote, start, type RunResult } from '../exec/run.ts';
import type { Logger, Step } from '../log.ts';
import type { Layout } from '../policy/layout.ts';
import { parseDuration, parseSize } from '../profile/units.ts';
import type { DiskRef } from '../model/disk.ts';
import { readUntrusted } from '../util/fs.ts';
import { freePort } from '../util/net.ts';
import type { Accel } from '../vm/accel.ts';
import { createOverlay } from '../vm/overlay.ts';
import { startQemu, type VmRunner } from '../vm/qemu.ts';
import { parseSerialLine, SerialTail } from '../vm/serial.ts';
import type { CheckLine } from '../model/smoke.ts';
import { mirrorForwards, mirrorHostsLines } from './mirror.ts';
import { makeExportDir, nfsFromGuest, startNfsServer, type NfsExport, type NfsServer } from './nfs.ts';
import { bootPlotCommand, bootPlotProblem } from './boot-plot.ts';
import { envAssignments, jobCommandLine, judgeJob, parseStatus, tail, torqueJob } from './job.ts';
import { hubArgs, networkConfig, nodeFile, nodeSpecs, parseRanks, privateNetdev, rankProblem, userMac, type NodeSpec } from './nodes.ts';
import { makeKeyPair, ssh, sshArgs, type SshTarget } from './ssh.ts';
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
  /** VMs in this rehearsal (default 1; from 2 on: private segment, MPI across them). */
  nodes?: number;
  /** Fail when the image cannot do RDMA between the VMs (multi-node). */
  requireVrdma?: boolean;
  /** The package mirrors' URLs the guests may reach (the host's apt sources, the profile's mirror). */
  mirrors?: string[];
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
  /** The job's wall time (SSH start to its end). */
  jobMs?: number;
  /** The first VM's start → the job's end: what a one-job allocation costs from boot. */
  jobEndMs?: number;
  /** The job's stdout (its .o file). */
  jobOutput?: string;
  /** The job as its batch user sees it: id, exit status, wall time, where its streams were kept, their tails. */
  job?: {
    id: string; name: string; command: string; node: string; exitCode?: number; wallMs: number; endMs: number;
    /** The copies of its .o and .e files beside the logs (absent when the job left none). */
    stdout?: string; stderr?: string; stdoutTail: string; stderrTail: string; env: Record<string, string>;
  };
  serialLog: string;
  /** Multi-node: each VM's own figures (jobReadyMs above is the slowest one's: the job waits for all). */
  nodes?: { name: string; address: string; jobReadyMs?: number; cloudInitDoneMs?: number; serialLog: string }[];
  mpiMs?: number;
  mpiOutput?: string;
  /** ib_send_bw between vnode01 and vnode02: "#bytes #iterations BW peak BW average MsgRate". */
  rdmaBetweenVms?: string;
}

/** Pure: the cloud-localds argv; without meta-data it writes instance-id iid-local01 (vTorque). */
export function cloudLocaldsArgs(output: string, userData: string, metaData?: string, networkConfigFile?: string): string[] {
  return ['cloud-localds', '--disk-format', 'raw', '--filesystem', 'iso9660', ...(networkConfigFile ? [`--network-config=${networkConfigFile}`] : []), output, userData, ...(metaData ? [metaData] : [])];
}

/** The exports' first contents (seeds the NFS server copies into its own filesystems), and their owners. */
async function prepareExports(dir: string, cluster: Cluster, publicKey: string): Promise<{ seeds: Record<string, string>; exports: NfsExport[] }> {
  const { uid, gid } = cluster.owner;
  const seeds = Object.fromEntries(exportNames.map((n) => [n, join(dir, n)]));
  const modes: Record<string, [number, number, number]> = { home: [uid, gid, 0o755], workspace: [0, 0, 0o1777], software: [0, 0, 0o755] };
  for (const n of exportNames) await makeExportDir(seeds[n]!, ...modes[n]!);
  await makeExportDir(join(seeds.home!, '.ssh'), uid, gid, 0o700);
  await writeFile(join(seeds.home!, '.ssh', 'authorized_keys'), `${publicKey}\n`, { mode: 0o600 });
  await run(['chown', `${uid}:${gid}`, join(seeds.home!, '.ssh', 'authorized_keys')]);
  await writeFile(join(seeds.software!, 'README'), 'the cluster\'s software share (mounted by guestforge rehearse)\n');
  return { seeds, exports: exportNames.map((n) => ({ name: n, seed: seeds[n]!, uid: modes[n]![0], gid: modes[n]![1], mode: modes[n]![2] })) };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** One VM of the rehearsal. */
interface NodeVm {
  spec: NodeSpec | undefined;
  /** Prefix of its check ids: '' for a single VM, 'vnode01/' with several. */
  prefix: string;
  label: string;
  serialLog: string;
  overlay: string;
  seed: string;
  target: SshTarget;
  vm?: VmRunner;
  tail?: SerialTail;
  started: number;
  result?: { ok: boolean; at: number };
  jobReadyMs?: number;
  cloudInitDoneMs?: number;
  /** The guest's own check lines, as it reported them. */
  guest: RehearsalCheck[];
}

/** The result line of ib_send_bw's client ("65536 200 33.21 31.02 0.000496"), or undefined. */
export function ibSendBwLine(output: string): string | undefined {
  return output.split('\n').filter((l) => /^ *\d+ +\d+ +[\d.]+ +[\d.]+/.test(l)).pop()?.trim().replace(/\s+/g, ' ');
}

export async function rehearseImage(image: DiskRef, o: RehearseOptions): Promise<RehearsalReport> {
  const { cluster, nonce, log } = o;
  const count = o.nodes ?? cluster.nodes.count;
  const multi = count > 1;
  await mkdir(o.workDir, { recursive: true, mode: 0o700 });
  await mkdir(o.logDir, { recursive: true, mode: 0o700 });
  const specs: (NodeSpec | undefined)[] = multi ? nodeSpecs(count, cluster.nodes.subnet) : [undefined];
  if (multi && cluster.nodes.mpiCommand === undefined && cluster.job.command === defaultJobCommand) {
    log.warn(`rehearse: ${count} nodes, but nothing runs across them: the job is the single-node sample and the cluster file names no nodes.mpiCommand; give a job that uses $PBS_NODEFILE (--job) or name nodes.mpiCommand (clusters/vtorque.yaml names the shipped MPI example)`);
  }
  const checks: RehearsalCheck[] = [];
  const report: RehearsalReport = { ok: false, checks, serialLog: join(o.logDir, multi ? 'rehearse-vnode01-console.log' : 'rehearse-console.log') };
  const add = (id: string, ok: boolean, detail: string, ms?: number) => checks.push({ id, status: ok ? 'pass' : 'fail', detail, ...(ms !== undefined ? { seconds: ms / 1000 } : {}) });

  const keyDir = join(o.workDir, 'ssh');
  await mkdir(keyDir, { recursive: true, mode: 0o700 });
  const { key, publicKey } = await makeKeyPair(keyDir, `guestforge-rehearse-${nonce}`);
  const { seeds, exports } = await prepareExports(join(o.workDir, 'exports'), cluster, publicKey);
  const home = mountPointOf(cluster, 'home');
  const nodeFileName = `pbs_nodefile.${nonce}`;
  if (multi) await prepareMultiNode(seeds.home!, cluster, nonce, specs as NodeSpec[], nodeFileName);
  /** The exports as the running server holds them (its own filesystems): where the job's files are read back. */
  let exportPaths: Record<string, string> = {};

  let nfs: NfsServer | undefined;
  let hub: ReturnType<typeof start> | undefined;
  const nodes: NodeVm[] = [];
  try {
    o.step?.update('NFS server');
    nfs = await startNfsServer(join(o.workDir, 'nfs'), exports, { uid: cluster.owner.uid, gid: cluster.owner.gid }, o.signal);
    exportPaths = Object.fromEntries(exportNames.map((n) => [n, nfs!.exportPath(n)]));
    const server = nfs;
    log.info(`rehearse: nfs-ganesha fenced in namespaces of its own, root squashed to ${cluster.owner.uid}:${cluster.owner.gid}, reached only through ${server.socket} (the guest mounts ${exportNames.map((n) => `${nfsFromGuest.address}:${pseudoOf(n)} at ${mountPointOf(cluster, n)}`).join(', ')})`);
    const checksScript = await readChecks('rehearse-checks.sh');
    const mirror = mirrorForwards(o.mirrors ?? []);
    for (const why of mirror.skipped) log.warn(`rehearse: the guests cannot reach ${why}`);
    log.info(`rehearse: the guests' user network is restricted; they reach the NFS server, ${mirror.forwards.length ? `the mirror${mirror.forwards.length > 1 ? 's' : ''} ${mirror.forwards.map((f) => `${f.host}:${f.port}`).join(', ')}` : 'no mirror'} and nothing else of the host`);
    const segmentDir = join(o.workDir, 'segment');
    if (multi) await mkdir(segmentDir, { mode: 0o700 });
    if (count > 2) {
      hub = start(hubArgs(specs as NodeSpec[], segmentDir), { stderrFile: join(o.logDir, 'rehearse-segment-hub.log') });
      void hub.catch(() => undefined);
    }

    for (const spec of specs) {
      const tag = spec ? `-${spec.name}` : '';
      const userData = renderCloudConfig(rehearsalUserData(cluster, {
        nonce, checks: checksScript, layout: o.layout, mirrorHosts: mirrorHostsLines(mirror.forwards),
        ...(spec ? { role: { node: spec, all: specs as NodeSpec[], subnet: cluster.nodes.subnet } } : {}),
      }));
      const seedDir = join(o.workDir, `seed${tag}`);
      await mkdir(seedDir, { recursive: true, mode: 0o700 });
      await writeFile(join(seedDir, 'user-data'), userData, { mode: 0o600 });
      await writeFile(join(o.logDir, `rehearse${tag}-user-data.yaml`), redactUserData(userData), { mode: 0o600 });
      let metaFile: string | undefined;
      if (cluster.seed.instanceId === 'fresh') {
        metaFile = join(seedDir, 'meta-data');
        await writeFile(metaFile, `instance-id: guestforge-rehearse-${nonce}${tag}\n`);
      }
      let networkFile: string | undefined;
      if (spec) {
        networkFile = join(seedDir, 'network-config');
        await writeFile(networkFile, renderCloudConfig(networkConfig(spec)).replace(/^#cloud-config\n/, ''), { mode: 0o600 });
      }
      const seed = join(o.workDir, `seed${tag}.img`);
      await run(cloudLocaldsArgs(seed, join(seedDir, 'user-data'), metaFile, networkFile), { timeoutMs: 60_000 });
      await chmod(seed, 0o600);
      const overlay = (await createOverlay(image, join(o.workDir, `rehearse${tag}.qcow2`))).path;
      nodes.push({
        spec, prefix: spec ? `${spec.name}/` : '', label: spec ? `rehearsal VM ${spec.name}` : 'rehearsal VM',
        serialLog: join(o.logDir, `rehearse${tag}-console.log`), overlay, seed,
        target: { port: await freePort(), user: cluster.owner.name, key }, started: 0, guest: [],
      });
    }

    o.step?.update(`booting ${multi ? `${count} VMs ` : ''}(${cluster.vm.machine}, ${cluster.vm.cpu}, seed on ${cluster.seed.transport})`);
    for (const n of nodes) {
      n.started = Date.now();
      n.vm = await startQemu({
        disk: n.overlay, diskFormat: 'qcow2', seedIso: n.seed, seedAsDisk: cluster.seed.transport === 'virtio-disk',
        memoryMiB: Math.floor(parseSize(cluster.vm.memory) / 1024 / 1024), cpus: cluster.vm.cpus, accel: o.accel,
        machine: cluster.vm.machine, cpuModel: cluster.vm.cpu, serialLog: n.serialLog, qmpSocket: join(o.workDir, `qmp${n.spec ? `-${n.spec.name}` : ''}.sock`),
        unsafeCache: true, hostForward: { hostPort: n.target.port, guestPort: 22 },
        isolated: true,
        guestForwards: [
          { ...nfsFromGuest, command: ['socat', 'STDIO', `UNIX-CONNECT:${server.socket}`] },
          ...mirror.forwards.map((f) => ({ address: f.address, port: f.port, command: ['socat', 'STDIO', `TCP:${f.host}:${f.port}`] })),
        ],
        ...(n.spec ? { privateNic: { netdev: privateNetdev(n.spec, count, segmentDir), mac: n.spec.mac, userMac } } : {}),
      }, n.label);
      n.tail = new SerialTail(n.serialLog);
      log.info(`rehearse: booting ${n.spec ? `${n.spec.name} (${n.spec.address} on ${cluster.nodes.subnet}) ` : 'the VM '}(${cluster.vm.machine}, cpu ${cluster.vm.cpu}, seed on ${cluster.seed.transport}, instance-id ${cluster.seed.instanceId === 'fixed' ? 'iid-local01' : 'fresh'}); SSH on 127.0.0.1:${n.target.port}`);
      log.detail(`${n.label}: ${shellQuote(n.vm.argv)}`);
    }

    const readConsole = async (n: NodeVm) => {
      for (const line of await n.tail!.poll()) {
        log.detail(`console${n.spec ? ` ${n.spec.name}` : ''}: ${line}`);
        const event = parseSerialLine(line, nonce);
        if (event?.kind === 'check') n.guest.push(event.check);
        else if (event?.kind === 'result' && !n.result) n.result = { ok: event.ok, at: Date.now() };
        else if (!multi && /\blogin:\s*$/.test(line)) o.step?.update('login prompt');
      }
    };

    // Job-ready: SSH as the owner works on every VM (which needs the NFS home: the key is there).
    const waitReady = async (n: NodeVm): Promise<string | undefined> => {
      const deadline = n.started + parseDuration(cluster.timeouts.jobReady);
      for (;;) {
        if (o.signal.aborted) throw o.signal.reason;
        await n.vm!.wait(3000);
        await readConsole(n);
        if (await n.vm!.stopped()) return `the VM stopped ${(await n.vm!.failure()) ?? 'by itself'}`;
        const probe = await ssh(n.target, 'id -un', 15_000);
        if (probe.exitCode === 0 && probe.stdout.trim() === cluster.owner.name) {
          n.jobReadyMs = Date.now() - n.started;
          return undefined;
        }
        // The in-guest checks have reported and SSH still fails: they say why; waiting longer changes nothing.
        // (runcmd restarted sshd before the checks ran, so 15 s is plenty.)
        if (n.result && Date.now() - n.result.at > 15_000) return 'the guest finished booting, but SSH as the owner does not work';
        if (Date.now() > deadline) return `timed out after ${cluster.timeouts.jobReady}`;
        const waiting = nodes.filter((x) => x.jobReadyMs === undefined).map((x) => x.spec?.name).filter(Boolean);
        o.step?.update(`waiting for SSH as ${cluster.owner.name}${multi ? ` on ${waiting.join(', ')}` : ''} (${seconds(Date.now() - n.started)})`);
      }
    };
    const why = await Promise.all(nodes.map(waitReady));
    let allReady = true;
    for (const [i, n] of nodes.entries()) {
      if (n.jobReadyMs !== undefined) {
        add(`${n.prefix}vm.job-ready`, true, `ssh ${cluster.owner.name}@ works ${seconds(n.jobReadyMs)} after VM start`, n.jobReadyMs);
        continue;
      }
      allReady = false;
      const guestSaid = n.guest.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.detail}`);
      add(`${n.prefix}vm.job-ready`, false, [`${n.spec ? `${n.spec.name}: ` : ''}${why[i]}`, ...guestSaid, ...(guestSaid.length ? [] : [`last console lines (${n.serialLog}):`, ...n.tail!.tail(15)])].join('\n'));
    }
    const readyTimes = nodes.map((n) => n.jobReadyMs).filter((ms): ms is number => ms !== undefined);
    if (readyTimes.length === nodes.length) report.jobReadyMs = Math.max(...readyTimes);
    if (!allReady) {
      for (const n of nodes) checks.push(...n.guest.map((c) => ({ ...c, id: `${n.prefix}${c.id}` })));
      return finish();
    }

    o.step?.update('cloud-init status --wait');
    await Promise.all(nodes.map(async (n) => {
      const status = await ssh(n.target, 'cloud-init status --wait --long', 15 * 60_000);
      n.cloudInitDoneMs = Date.now() - n.started;
      // 0 done; 2 degraded (23.4+): it went on past recoverable errors (a deprecated key, a module's
      // warning), which every job's boot would meet: a failure, with what they were.
      const statusLine = status.stdout.split('\n').filter((l) => /^\s*(status|errors|recoverable_errors|detail|-?\s*(WARNING|DEPRECATED|ERROR)\b)/.test(l)).map((l) => l.trim()).join('; ').slice(0, 600) || status.stderr.trim();
      checks.push({ id: `${n.prefix}cloud-init.done`, status: status.exitCode === 0 ? 'pass' : 'fail', detail: `${statusLine} (${seconds(n.cloudInitDoneMs)} after VM start)`, seconds: n.cloudInitDoneMs / 1000 });
      // The in-guest checks run last in runcmd: their result line follows cloud-init's end.
      for (let i = 0; i < 20 && !n.result; i += 1) {
        await n.vm!.wait(1000);
        await readConsole(n);
      }
      if (!n.result) add(`${n.prefix}rehearse.in-guest-checks`, false, 'the checks in runcmd never reported (see the console log)');
    }));
    report.cloudInitDoneMs = Math.max(...nodes.map((n) => n.cloudInitDoneMs ?? 0));
    for (const n of nodes) checks.push(...n.guest.map((c) => ({ ...c, id: `${n.prefix}${c.id}` })));

    const first = nodes[0]!;
    const ws = mountPointOf(cluster, 'workspace');
    const job = torqueJob({
      name: cluster.job.name, clusterName: cluster.name, nonce, owner: cluster.owner.name, home, workspace: ws,
      nodeFile: posix.join(home, nodeFileName), nodes: nodes.length, slotsPerNode: cluster.vm.cpus, nodeFileWritten: multi,
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
    const streams = { stdout: join(exportPaths.home!, job.stdoutName), stderr: join(exportPaths.home!, job.stderrName) };
    const stdout = await readUntrusted(streams.stdout);
    const stderr = await readUntrusted(streams.stderr);
    const statusFile = join(exportPaths.workspace!, job.statusName);
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
    add('job.run', verdict.ok, `${job.id}: ${verdict.detail}`, wallMs);

    // What the job wrote is on the cluster's storage, owned by the owner's uid.
    // lstat: a symlink the guest left there says nothing about the job (and is not followed).
    const owned = async (path: string) => lstat(path).then((s) => (s.isFile() ? `${s.uid}:${s.gid}` : undefined), () => undefined);
    const want = `${cluster.owner.uid}:${cluster.owner.gid}`;
    const found = [
      [`home/${job.stdoutName}`, await owned(streams.stdout)],
      [`home/${job.stderrName}`, await owned(streams.stderr)],
      [`workspace/${job.statusName}`, await owned(statusFile)],
    ] as const;
    add('nfs.job-output', found.every(([, owner]) => owner === want),
      `on the host's exports: ${found.map(([name, owner]) => `${name} ${owner ?? 'missing'}`).join(', ')} (want ${want})`);

    if (multi) await acrossNodes(nodes, { env: job.env, exportHome: exportPaths.home! });
    // After the job (its figures are not the plot's): each boot unit by unit, beside the logs.
    await Promise.all(nodes.map((n) => keepBootPlot(n)));
    return finish();
  } finally {
    // Every VM and the NFS server are stopped even when one stop fails.
    await Promise.allSettled(nodes.map((n) => n.vm?.stop()));
    hub?.kill('SIGTERM');
    await hub?.catch(() => undefined);
    await nfs?.stop();
    for (const n of nodes) {
      await rm(n.overlay, { force: true });
      await rm(n.seed, { force: true });
    }
  }

  /** The VM's systemd-analyze plot beside the logs, when it is what systemd draws (read capped, written afresh). */
  async function keepBootPlot(n: NodeVm): Promise<void> {
    const file = join(o.logDir, `rehearse${n.spec ? `-${n.spec.name}` : ''}-boot.svg`);
    const raw = join(o.workDir, `boot-plot${n.spec ? `-${n.spec.name}` : ''}.svg`);
    await rm(file, { force: true });
    const plot = await run(sshArgs(n.target, bootPlotCommand), { allowFailure: true, timeoutMs: 120_000, stdoutFile: raw });
    const svg = await readUntrusted(raw, 4_000_000);
    await rm(raw, { force: true });
    const problem = plot.exitCode !== 0 ? `exit ${plot.exitCode}: ${tail(plot.stderr, 1)}` : svg === undefined ? 'nothing came back' : bootPlotProblem(svg);
    if (problem) log.warn(`rehearse: ${n.spec?.name ?? 'the VM'}'s boot plot not kept: ${problem}`);
    else await writeFile(file, svg!, { mode: 0o600, flag: 'wx' });
  }

  function finish(): RehearsalReport {
    if (multi) {
      report.nodes = nodes.map((n) => ({
        name: n.spec!.name, address: n.spec!.address, serialLog: n.serialLog,
        ...(n.jobReadyMs !== undefined ? { jobReadyMs: n.jobReadyMs } : {}),
        ...(n.cloudInitDoneMs !== undefined ? { cloudInitDoneMs: n.cloudInitDoneMs } : {}),
      }));
    }
    report.ok = checks.every((c) => c.status !== 'fail') && checks.length > 0;
    return report;
  }

  /** For a failure with SSH's silent 255: which VMs are no longer running, and why. */
  async function vmsGone(which: NodeVm[]): Promise<string> {
    const gone: string[] = [];
    for (const n of which) if (await n.vm?.stopped()) gone.push(`${n.spec?.name ?? 'the VM'} stopped ${(await n.vm!.failure()) ?? 'by itself'}`);
    return gone.length ? `; ${gone.join('; ')}` : '';
  }

  /** The multi-node part: every pair reachable over SSH by name, the MPI job across all VMs, RDMA verbs between two. */
  async function acrossNodes(nodes: NodeVm[], p: { env: Record<string, string>; exportHome: string }): Promise<void> {
    let reachable = true;
    for (const a of nodes) {
      for (const b of nodes) {
        if (a === b) continue;
        const r = await ssh(a.target, `ssh -o BatchMode=yes -o ConnectTimeout=10 ${b.spec!.name} hostname`, 60_000);
        const ok = r.exitCode === 0 && r.stdout.trim() === b.spec!.name;
        if (!ok) reachable = false;
        add(`net.${a.spec!.name}-${b.spec!.name}`, ok, ok
          ? `${a.spec!.name} reaches ${b.spec!.name} (${b.spec!.address}) over SSH as ${cluster.owner.name}`
          : `${a.spec!.name} cannot reach ${b.spec!.name} at ${b.spec!.address} over SSH as ${cluster.owner.name}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' | ') || `exit ${r.exitCode}`}`);
      }
    }

    const ranks = nodes.length * cluster.vm.cpus; // the node file has one line per slot
    const hosts = nodes.map((n) => n.spec!.name);
    const mpiCommand = cluster.nodes.mpiCommand;
    /** The shipped MPI example from vnode01 (optionally with more mpirun options), its output read back from the export and judged by its rank lines. */
    const runMpi = async (command: string, name: string, extra?: { mpirunArgs: string; limitS: number }) => {
      const outName = `${name}-${nonce}.out`;
      const env = `${extra ? `MPIRUN_ARGS=${shellQuote([extra.mpirunArgs])} ` : ''}${envAssignments(p.env)}`;
      const t0 = Date.now();
      const r = await ssh(nodes[0]!.target, `cd && ${env} ${extra ? `timeout ${extra.limitS} ` : ''}sh -c ${shellQuote([command])} > ${outName} 2>&1`,
        extra ? (extra.limitS + 30) * 1000 : parseDuration(cluster.timeouts.job));
      const ms = Date.now() - t0;
      const output = await readUntrusted(join(p.exportHome, outName)); // the guest wrote it
      const problem = r.exitCode !== 0 ? `exit ${r.exitCode}: ${(output ?? r.stderr).trim().split('\n').slice(extra ? -3 : -4).join(' | ')}` : rankProblem(parseRanks(output ?? ''), ranks, hosts);
      return { ms, output, problem };
    };
    // The shipped example's rank lines: a check of its own, when the cluster file names it (the job above is the admin's).
    if (mpiCommand !== undefined) {
      o.step?.update(`MPI example across ${nodes.length} VMs`);
      const mpi = reachable ? await runMpi(mpiCommand, 'mpi') : undefined;
      report.mpiMs = mpi?.ms ?? 0;
      report.mpiOutput = mpi?.output;
      const problem = mpi ? mpi.problem : 'not run: the VMs cannot reach each other (see the net.* checks)';
      add('mpi.ranks', problem === undefined, problem === undefined
        ? `mpirun -np ${ranks} --hostfile $PBS_NODEFILE in ${seconds(report.mpiMs)}: ${(report.mpiOutput ?? '').trim().split('\n').filter((l) => l.startsWith('rank ')).join(' | ')}`
        : `${mpiCommand}: ${problem}`, report.mpiMs);
    }

    // RDMA verbs between the first two VMs, over the rxe devices the guests put on the private NIC.
    const rxe = nodes.slice(0, 2).map((n) => checks.find((c) => c.id === `${n.prefix}vrdma.rxe-private`));
    if (rxe.every((c) => c === undefined)) {
      if (o.requireVrdma) add('vrdma.between-vms', false, 'the image has no vRDMA userspace (rdma, ib_send_bw): build it with vrdma.enabled');
      return;
    }
    // The guest names its device: only a plain name goes into the command line.
    const device = (c: RehearsalCheck | undefined) => /link ([\w.-]+)\/\d+ /.exec(c?.detail ?? '')?.[1];
    const [dev1, dev2] = rxe.map(device);
    if (rxe.some((c) => c?.status !== 'pass') || !dev1 || !dev2) {
      add('vrdma.between-vms', false, `not run: rxe on the private NIC is not ACTIVE on ${nodes.slice(0, 2).filter((_, i) => rxe[i]?.status !== 'pass').map((n) => n.spec!.name).join(' and ') || 'both'}`);
      return;
    }
    o.step?.update(`ib_send_bw ${nodes[0]!.spec!.name} → ${nodes[1]!.spec!.name}`);
    const server = ssh(nodes[1]!.target, `timeout 120 ib_send_bw -d ${dev2} -F -n 1000`, 150_000);
    let serverDone = false;
    void server.then(() => (serverDone = true));
    // The server starts over SSH under TCG: the client retries until it listens (or is gone).
    let client: RunResult;
    let attempt = 0;
    do {
      await new Promise((r) => setTimeout(r, 3000));
      client = await ssh(nodes[0]!.target, `timeout 60 ib_send_bw -d ${dev1} -F -n 1000 ${nodes[1]!.spec!.address}`, 90_000);
      attempt += 1;
    } while (attempt < 8 && !serverDone && /Couldn't connect|Unable to open file descriptor for socket connection/.test(`${client.stdout}${client.stderr}`));
    const served = await server;
    const line = ibSendBwLine(client.stdout);
    report.rdmaBetweenVms = line;
    const ok = client.exitCode === 0 && served.exitCode === 0 && line !== undefined;
    add('vrdma.between-vms', ok, ok
      ? `ib_send_bw ${nodes[0]!.spec!.name} (${dev1}) → ${nodes[1]!.spec!.name} (${dev2}, ${nodes[1]!.spec!.address}): #bytes #iters BWpeak BWavg[MB/s] MsgRate = ${line}`
      : `ib_send_bw failed (client exit ${client.exitCode}, server exit ${served.exitCode}, ${attempt} attempt${attempt > 1 ? 's' : ''}): ${tail(`${client.stdout}\n${client.stderr}\n${served.stdout}\n${served.stderr}`, 4).replaceAll('\n', ' | ') || 'no output'}${await vmsGone(nodes.slice(0, 2))}`);

    // Open MPI over UCX on the rxe devices: reported, never failing the rehearsal (TCP is what jobs get).
    if (mpiCommand === undefined) return; // tried with the shipped example; an admin's job says what it uses
    o.step?.update('MPI over UCX on rxe');
    const ucxArgs = `--mca pml ucx --mca btl ^tcp,openib,uct -x UCX_NET_DEVICES=${dev1}:1 -x UCX_TLS=rc,self,sm`;
    const ucx = await runMpi(mpiCommand, 'mpi-ucx', { mpirunArgs: ucxArgs, limitS: 90 });
    const ucxText = ucx.output ?? '';
    const ucxProblem = ucx.problem;
    checks.push({ id: 'mpi.ucx-rxe', status: ucxProblem === undefined ? 'pass' : 'warn', detail: ucxProblem === undefined
      ? `Open MPI over UCX on ${dev1}/${dev2} (${ucxArgs}): ${ucxText.trim().split('\n').filter((l) => l.startsWith('rank ')).join(' | ')}`
      : `Open MPI over UCX on rxe did not work (jobs use TCP): ${ucxProblem}` });
  }
}

/** The owner's own key pair in the NFS home (ranks reach each other with it, as on the cluster), and the node file. */
async function prepareMultiNode(homeDir: string, cluster: Cluster, nonce: string, specs: NodeSpec[], nodeFileName: string): Promise<void> {
  const { uid, gid } = cluster.owner;
  const sshDir = join(homeDir, '.ssh');
  const own = await makeKeyPair(sshDir, `${cluster.owner.name}@cluster-${nonce}`);
  await writeFile(join(sshDir, 'authorized_keys'), `${own.publicKey}\n`, { flag: 'a', mode: 0o600 });
  // Host keys are made at every job start: nothing to pin them to (the cluster does the same).
  await writeFile(join(sshDir, 'config'), `Host ${specs.map((s) => s.name).join(' ')}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n`, { mode: 0o600 });
  await writeFile(join(homeDir, nodeFileName), nodeFile(specs, cluster.vm.cpus), { mode: 0o644 });
  for (const f of [sshDir, join(sshDir, 'id_ed25519'), join(sshDir, 'id_ed25519.pub'), join(sshDir, 'authorized_keys'), join(sshDir, 'config'), join(homeDir, nodeFileName)]) {
    await run(['chown', `${uid}:${gid}`, f]);
  }
}
