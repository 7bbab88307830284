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
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readChecks } from '../cloudinit/checks.ts';
import { clusterMachine, defaultJobCommand, type Cluster } from '../cluster/schema.ts';
import { run, start } from '../exec/run.ts';
import type { DiskRef } from '../model/disk.ts';
import { keepBootPlot } from './boot-plot.ts';
import { mirrorForwards } from './mirror.ts';
import { checkMpiRanks, checkPairs, checkUcxOnRxe } from './mpi.ts';
import { makeExportDir, nfsFromGuest, startNfsServer, type NfsExport, type NfsServer } from './nfs.ts';
import { bootNode, prepareNode, secondsField, waitCloudInit, waitReady } from './node-vm.ts';
import { hubArgs, nodeFile, nodeSpecs, type NodeSpec } from './nodes.ts';
import { checkRdmaBetweenVms } from './rdma.ts';
import { runJob } from './run-job.ts';
import { makeKeyPair } from './ssh.ts';
import { seconds, type NodeVm, type Rehearsal, type RehearsalCheck, type RehearsalReport, type RehearseOptions } from './types.ts';
import { exportNames, mountPointOf, pseudoOf } from './userdata.ts';

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
  const nodes: NodeVm[] = [];
  const checks: RehearsalCheck[] = []; // the report's own list: every phase adds to it
  const r: Rehearsal = {
    o, cluster, nonce, log, multi, nodes, checks,
    report: { ok: false, checks, serialLog: join(o.logDir, multi ? 'rehearse-vnode01-console.log' : 'rehearse-console.log') },
    add(id, ok, detail, ms) {
      r.checks.push({ id, status: ok ? 'pass' : 'fail', detail, ...(ms !== undefined ? { seconds: ms / 1000 } : {}) });
    },
  };

  const keyDir = join(o.workDir, 'ssh');
  await mkdir(keyDir, { recursive: true, mode: 0o700 });
  const { key, publicKey } = await makeKeyPair(keyDir, `guestforge-rehearse-${nonce}`);
  const { seeds, exports } = await prepareExports(join(o.workDir, 'exports'), cluster, publicKey);
  const nodeFileName = `pbs_nodefile.${nonce}`;
  if (multi) await prepareMultiNode(seeds.home!, cluster, nonce, specs as NodeSpec[], nodeFileName);

  let nfs: NfsServer | undefined;
  let hub: ReturnType<typeof start> | undefined;
  try {
    o.step?.update('NFS server');
    nfs = await startNfsServer(join(o.workDir, 'nfs'), exports, { uid: cluster.owner.uid, gid: cluster.owner.gid }, o.signal);
    /** The exports as the running server holds them (its own filesystems): where the job's files are read back. */
    const exportPaths = Object.fromEntries(exportNames.map((n) => [n, nfs!.exportPath(n)]));
    log.info(`rehearse: nfs-ganesha fenced in namespaces of its own, root squashed to ${cluster.owner.uid}:${cluster.owner.gid}, reached only through ${nfs.socket} (the guest mounts ${exportNames.map((n) => `${nfsFromGuest.address}:${pseudoOf(n)} at ${mountPointOf(cluster, n)}`).join(', ')})`);
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

    for (const spec of specs) nodes.push(await prepareNode(r, image, spec, { specs: specs as NodeSpec[], checksScript, mirror: mirror.forwards, key }));
    o.step?.update(`booting ${multi ? `${count} VMs ` : ''}(${clusterMachine(cluster)}, ${cluster.vm.firmware}, ${cluster.vm.cpu}, seed on ${cluster.seed.transport})`);
    for (const n of nodes) await bootNode(r, n, { nfsSocket: nfs.socket, mirror: mirror.forwards, segmentDir });

    const why = await Promise.all(nodes.map((n) => waitReady(r, n)));
    let allReady = true;
    for (const [i, n] of nodes.entries()) {
      if (n.jobReadyMs !== undefined) {
        r.add(`${n.prefix}vm.job-ready`, true, `ssh ${cluster.owner.name}@ works ${seconds(n.jobReadyMs)} after VM start`, n.jobReadyMs);
        continue;
      }
      allReady = false;
      const guestSaid = n.guest.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.detail}`);
      r.add(`${n.prefix}vm.job-ready`, false, [`${n.spec ? `${n.spec.name}: ` : ''}${why[i]}`, ...guestSaid, ...(guestSaid.length ? [] : [`last console lines (${n.serialLog}):`, ...n.tail!.tail(15)])].join('\n'));
    }
    const readyTimes = nodes.map((n) => n.jobReadyMs).filter((ms): ms is number => ms !== undefined);
    if (readyTimes.length === nodes.length) r.report.jobReadyMs = Math.max(...readyTimes);
    if (!allReady) {
      for (const n of nodes) r.checks.push(...n.guest.map((c) => ({ ...c, id: `${n.prefix}${c.id}` })));
      return finish(r);
    }

    o.step?.update('cloud-init status --wait');
    await Promise.all(nodes.map((n) => waitCloudInit(r, n)));
    r.report.cloudInitDoneMs = Math.max(...nodes.map((n) => n.cloudInitDoneMs ?? 0));
    for (const n of nodes) r.checks.push(...n.guest.map((c) => ({ ...c, id: `${n.prefix}${c.id}` })));

    const job = await runJob(r, { exportPaths, nodeFileName });
    if (multi) {
      const p = { env: job.env, exportHome: exportPaths.home! };
      const reachable = await checkPairs(r);
      const mpiCommand = cluster.nodes.mpiCommand;
      if (mpiCommand !== undefined) await checkMpiRanks(r, p, mpiCommand, reachable);
      const devices = await checkRdmaBetweenVms(r);
      // Tried with the shipped example; an admin's job says what it uses.
      if (devices && mpiCommand !== undefined) await checkUcxOnRxe(r, p, mpiCommand, devices);
    }
    // After the job (its figures are not the plot's): each boot unit by unit, beside the logs.
    await Promise.all(nodes.map((n) => keepBootPlot(r, n)));
    return finish(r);
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
}

/** The report as the rehearsal ends: each VM's figures, and ok when checks ran and none failed. */
function finish(r: Rehearsal): RehearsalReport {
  const { report } = r;
  if (r.multi) {
    report.nodes = r.nodes.map((n) => ({
      name: n.spec!.name, address: n.spec!.address, serialLog: n.serialLog,
      ...(n.jobReadyMs !== undefined ? { jobReadyMs: n.jobReadyMs } : {}),
      ...(n.cloudInitDoneMs !== undefined ? { cloudInitDoneMs: n.cloudInitDoneMs } : {}),
    }));
  }
  // The cluster's own costs inside cloud-init done: each the most any VM took (they may be two VMs').
  const cost = (id: string) => Math.max(-1, ...r.nodes.map((n) => secondsField(n, id) ?? -1));
  const [packagesMs, runcmdMs] = [cost('cloud-init.packages'), cost('cloud-init.runcmd')];
  if (packagesMs >= 0 || runcmdMs >= 0) report.clusterCost = { ...(packagesMs >= 0 ? { packagesMs } : {}), ...(runcmdMs >= 0 ? { runcmdMs } : {}) };
  report.ok = r.checks.every((c) => c.status !== 'fail') && r.checks.length > 0;
  return report;
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
