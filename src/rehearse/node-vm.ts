/**
 * One VM of a rehearsal, from its seed to the moment the job may start: its cloud-localds seed
 * (user-data, meta-data only for a fresh instance-id, network-config on a private segment), its
 * overlay, qemu as the cluster starts it, then job-ready (SSH as the owner works, which needs
 * the NFS home) and cloud-init's end, reading the guest's check lines from its console.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { redactUserData, renderCloudConfig } from '../cloudinit/yaml.ts';
import { run, shellQuote } from '../exec/run.ts';
import type { DiskRef } from '../model/disk.ts';
import { parseDuration, parseSize } from '../profile/units.ts';
import { freePort } from '../util/net.ts';
import { createOverlay } from '../vm/overlay.ts';
import { startQemu } from '../vm/qemu.ts';
import { prepareFirmware } from '../vm/firmware.ts';
import { clusterMachine } from '../cluster/schema.ts';
import { parseSerialLine, SerialTail } from '../vm/serial.ts';
import type { MirrorForward } from './mirror.ts';
import { mirrorHostsLines } from './mirror.ts';
import { nfsFromGuest } from './nfs.ts';
import { networkConfig, privateNetdev, userMac, type NodeSpec } from './nodes.ts';
import { ssh } from './ssh.ts';
import type { NodeVm, Rehearsal } from './types.ts';
import { seconds } from './types.ts';
import { rehearsalUserData } from './userdata.ts';

/** Pure: the cloud-localds argv; without meta-data it writes instance-id iid-local01 (vTorque). */
export function cloudLocaldsArgs(output: string, userData: string, metaData?: string, networkConfigFile?: string): string[] {
  return ['cloud-localds', '--disk-format', 'raw', '--filesystem', 'iso9660', ...(networkConfigFile ? [`--network-config=${networkConfigFile}`] : []), output, userData, ...(metaData ? [metaData] : [])];
}

/** A VM's seed and overlay, made as the cluster's prologue makes them; the VM is not started yet. */
export async function prepareNode(r: Rehearsal, image: DiskRef, spec: NodeSpec | undefined, p: { specs: NodeSpec[]; checksScript: string; mirror: MirrorForward[]; key: string }): Promise<NodeVm> {
  const { o, cluster, nonce } = r;
  const tag = spec ? `-${spec.name}` : '';
  const userData = renderCloudConfig(rehearsalUserData(cluster, {
    nonce, checks: p.checksScript, layout: o.layout, mirrorHosts: mirrorHostsLines(p.mirror),
    ...(spec ? { role: { node: spec, all: p.specs, subnet: cluster.nodes.subnet } } : {}),
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
  return {
    spec, prefix: spec ? `${spec.name}/` : '', label: spec ? `rehearsal VM ${spec.name}` : 'rehearsal VM',
    serialLog: join(o.logDir, `rehearse${tag}-console.log`), overlay, seed,
    target: { port: await freePort(), user: cluster.owner.name, key: p.key }, started: 0, guest: [], data: new Map(),
  };
}

/** Starts a VM as the cluster does: its machine and CPU, the seed, the restricted user network, the private NIC. */
export async function bootNode(r: Rehearsal, n: NodeVm, p: { nfsSocket: string; mirror: MirrorForward[]; segmentDir: string }): Promise<void> {
  const { o, cluster, log } = r;
  const uefi = await prepareFirmware(cluster.vm.firmware, join(o.workDir, `ovmf-vars${n.spec ? `-${n.spec.name}` : ''}.fd`));
  n.started = Date.now();
  n.vm = await startQemu({
    disk: n.overlay, diskFormat: 'qcow2', seedIso: n.seed, seedAsDisk: cluster.seed.transport === 'virtio-disk',
    memoryMiB: Math.floor(parseSize(cluster.vm.memory) / 1024 / 1024), cpus: cluster.vm.cpus, accel: o.accel,
    machine: clusterMachine(cluster), ...(uefi ? { uefi } : {}), cpuModel: cluster.vm.cpu, serialLog: n.serialLog, qmpSocket: join(o.workDir, `qmp${n.spec ? `-${n.spec.name}` : ''}.sock`),
    unsafeCache: true, hostForward: { hostPort: n.target.port, guestPort: 22 },
    isolated: true,
    guestForwards: [
      { ...nfsFromGuest, command: ['socat', 'STDIO', `UNIX-CONNECT:${p.nfsSocket}`] },
      ...p.mirror.map((f) => ({ address: f.address, port: f.port, command: ['socat', 'STDIO', `TCP:${f.host}:${f.port}`] })),
    ],
    ...(n.spec ? { privateNic: { netdev: privateNetdev(n.spec, r.nodes.length, p.segmentDir), mac: n.spec.mac, userMac } } : {}),
  }, n.label);
  n.tail = new SerialTail(n.serialLog);
  log.info(`rehearse: booting ${n.spec ? `${n.spec.name} (${n.spec.address} on ${cluster.nodes.subnet}) ` : 'the VM '}(${clusterMachine(cluster)}, ${cluster.vm.firmware}, cpu ${cluster.vm.cpu}, seed on ${cluster.seed.transport}, instance-id ${cluster.seed.instanceId === 'fixed' ? 'iid-local01' : 'fresh'}); SSH on 127.0.0.1:${n.target.port}`);
  log.detail(`${n.label}: ${shellQuote(n.vm.argv)}`);
}

/** The console lines since the last read: the guest's checks, its fields and its result line. */
async function readConsole(r: Rehearsal, n: NodeVm): Promise<void> {
  for (const line of await n.tail!.poll()) {
    r.log.detail(`console${n.spec ? ` ${n.spec.name}` : ''}: ${line}`);
    const event = parseSerialLine(line, r.nonce);
    if (event?.kind === 'check') n.guest.push(event.check);
    else if (event?.kind === 'data') keepField(n, event.id, event.key, event.value);
    else if (event?.kind === 'result' && !n.result) n.result = { ok: event.ok, at: Date.now() };
    else if (!r.multi && /\blogin:\s*$/.test(line)) r.o.step?.update('login prompt');
  }
}

/** A field a guest's check handed over; bounded, since the guest may be hostile: 16 checks of 16 fields, values of 256 characters. */
export function keepField(n: Pick<NodeVm, 'data'>, id: string, key: string, value: string): void {
  const fields = n.data.get(id);
  if (value.length > 256 || (!fields && n.data.size >= 16) || (fields && !(key in fields) && Object.keys(fields).length >= 16)) return;
  n.data.set(id, { ...fields, [key]: value });
}

/** Pure: a guest's field of seconds (cloud-init.packages, cloud-init.runcmd) as ms; undefined unless a plain figure under a day. */
export function secondsField(n: Pick<NodeVm, 'data'>, id: string): number | undefined {
  const value = n.data.get(id)?.seconds;
  if (value === undefined || !/^\d{1,5}(\.\d{1,6})?$/.test(value) || Number(value) >= 86_400) return undefined;
  return Math.round(Number(value) * 1000);
}

/** Job-ready: SSH as the owner works (which needs the NFS home: the key is there). Undefined, or why not. */
export async function waitReady(r: Rehearsal, n: NodeVm): Promise<string | undefined> {
  const { o, cluster } = r;
  const deadline = n.started + parseDuration(cluster.timeouts.jobReady);
  for (;;) {
    if (o.signal.aborted) throw o.signal.reason;
    await n.vm!.wait(3000);
    await readConsole(r, n);
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
    const waiting = r.nodes.filter((x) => x.jobReadyMs === undefined).map((x) => x.spec?.name).filter(Boolean);
    o.step?.update(`waiting for SSH as ${cluster.owner.name}${r.multi ? ` on ${waiting.join(', ')}` : ''} (${seconds(Date.now() - n.started)})`);
  }
}

/** cloud-init's end on a VM (its verdict a check), then the guest's own check lines, which follow it. */
export async function waitCloudInit(r: Rehearsal, n: NodeVm): Promise<void> {
  const status = await ssh(n.target, 'cloud-init status --wait --long', 15 * 60_000);
  n.cloudInitDoneMs = Date.now() - n.started;
  // 0 done; 2 degraded (23.4+): it went on past recoverable errors (a deprecated key, a module's
  // warning), which every job's boot would meet: a failure, with what they were.
  const statusLine = status.stdout.split('\n').filter((l) => /^\s*(status|errors|recoverable_errors|detail|-?\s*(WARNING|DEPRECATED|ERROR)\b)/.test(l)).map((l) => l.trim()).join('; ').slice(0, 600) || status.stderr.trim();
  r.checks.push({ id: `${n.prefix}cloud-init.done`, status: status.exitCode === 0 ? 'pass' : 'fail', detail: `${statusLine} (${seconds(n.cloudInitDoneMs)} after VM start)`, seconds: n.cloudInitDoneMs / 1000 });
  // The in-guest checks run last in runcmd: their result line follows cloud-init's end.
  for (let i = 0; i < 20 && !n.result; i += 1) {
    await n.vm!.wait(1000);
    await readConsole(r, n);
  }
  if (!n.result) r.add(`${n.prefix}rehearse.in-guest-checks`, false, 'the checks in runcmd never reported (see the console log)');
}

/** For a failure with SSH's silent 255: which VMs are no longer running, and why. */
export async function vmsGone(which: NodeVm[]): Promise<string> {
  const gone: string[] = [];
  for (const n of which) if (await n.vm?.stopped()) gone.push(`${n.spec?.name ?? 'the VM'} stopped ${(await n.vm!.failure()) ?? 'by itself'}`);
  return gone.length ? `; ${gone.join('; ')}` : '';
}
