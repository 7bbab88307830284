/**
 * The libvirt backend with a real libvirtd (started here as root when none
 * runs, listening on 127.0.0.1 over TCP without auth: a test-only config),
 * domain type qemu (TCG). Local builds use files in place; the
 * qemu+tcp://127.0.0.1 URI counts as remote, so disks, seed and console
 * really travel through the storage pool.
 *
 * Not covered here: KVM domains (KVM hangs on this host), qemu+ssh, a
 * second physical host.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { suite } from 'uvu';
import { writeWrongShaProfile } from './helpers/wrong-sha.ts';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { running as isRunning, waitUntil } from './helpers/wait.ts';
import { run } from '../src/exec/run.ts';
import { domainXml } from '../src/vm/domain-xml.ts';
import { leftovers, virsh } from '../src/vm/libvirt.ts';
import { StageCache } from '../src/cache/store.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const cache = process.env.GUESTFORGE_TEST_CACHE ?? join(root, '.test-cache');
const env = { XDG_CACHE_HOME: cache, CI: '1' };
const remote = 'qemu+tcp://127.0.0.1/system';
const pool = 'guestforge-test';
const tmp = await mkdtemp(join(tmpdir(), 'gf-libvirt-'));

function guestforge(args: string[], timeoutMs = 40 * 60_000): ResultPromise<{ reject: false; all: true }> {
  return execa('node', [cli, ...args], { env, reject: false, all: true, timeout: timeoutMs }) as ResultPromise<{ reject: false; all: true }>;
}

const xml = suite('domain XML');

xml('the template gives a valid domain: type, TCG cpu, virtio disk, seed cdrom, serial file, no reboot', async () => {
  const text = await domainXml({
    name: 'guestforge-x-provision-abc', label: 'build VM', accel: 'tcg', memoryMiB: 1024, cpus: 2,
    disks: [{ path: '/w/provision.qcow2', format: 'qcow2' }, { path: "/w/seed's.iso", format: 'raw', cdrom: true }],
    serialPath: '/w/console.log', unsafeCache: true, allowReboot: false, runAs: { uid: 0, gid: 0 },
  });
  assert.match(text, /^<domain type='qemu'>/);
  assert.match(text, /<cpu mode='maximum' check='none'\/>/);
  assert.match(text, /<driver name='qemu' type='qcow2' cache='unsafe' discard='unmap'\/>\s*<source file='\/w\/provision.qcow2'\/>\s*<target dev='vda' bus='virtio'\/>/);
  assert.match(text, /device='cdrom'>[\s\S]*<source file='\/w\/seed&apos;s.iso'\/>/, 'paths are XML-escaped');
  assert.match(text, /<on_reboot>destroy<\/on_reboot>/);
  assert.match(text, /<serial type='file'>\s*<source path='\/w\/console.log'\/>/);
  assert.match(text, /<label>\+0:\+0<\/label>/);
  assert.not.match(text, /\{\{/);
  const file = join(tmp, 'domain.xml');
  await writeFile(file, text);
  const r = await run(['virt-xml-validate', file, 'domain'], { allowFailure: true });
  assert.is(r.exitCode, 0, `${r.stdout}${r.stderr}`);
  const kvm = await domainXml({
    name: 'n', label: 'smoke VM', accel: 'kvm', memoryMiB: 512, cpus: 1, disks: [{ path: '/a.qcow2', format: 'qcow2' }],
    serialPath: '/s', unsafeCache: false, allowReboot: true,
  });
  assert.match(kvm, /^<domain type='kvm'>/);
  assert.match(kvm, /host-passthrough/);
  assert.match(kvm, /<on_reboot>restart<\/on_reboot>/);
  assert.not.match(kvm, /seclabel/);
});

// ---- with a daemon
let startedDaemon = false;

async function ensureLibvirtd(): Promise<void> {
  const local = await virsh(undefined, ['version'], { allowFailure: true });
  if (local.exitCode !== 0) {
    const conf = join(tmp, 'libvirtd.conf');
    await writeFile(conf, ['listen_tls = 0', 'listen_tcp = 1', 'listen_addr = "127.0.0.1"', 'auth_tcp = "none"', ''].join('\n'));
    await run(['sh', '-c', 'pgrep -x virtlogd >/dev/null || virtlogd -d']);
    await run(['libvirtd', '-d', '--listen', '-f', conf]);
    startedDaemon = true;
    // Its first start probes qemu (8.4 s in one suite run here): wait while it lives, fail at once if it died.
    const up = await waitUntil(async () => (await virsh(undefined, ['version'], { allowFailure: true })).exitCode === 0, {
      alive: async () => (await run(['pgrep', '-x', 'libvirtd'], { allowFailure: true })).exitCode === 0, ceilingMs: 5 * 60_000,
    });
    assert.ok(up, 'libvirtd exited or never answered: see its log (journalctl or /var/log/libvirt)');
  }
  const tcp = await virsh(remote, ['version'], { allowFailure: true });
  assert.is(tcp.exitCode, 0, `libvirtd must listen on 127.0.0.1 over TCP without auth for these tests (a libvirtd already runs without it?): ${tcp.stderr}`);
}

async function assertNothingLeft(): Promise<void> {
  const left = await leftovers({ uri: remote, pool });
  assert.equal(left.domains, [], 'no guestforge domain may stay defined');
  assert.equal(left.volumes, [], 'no guestforge volume may stay in the pool');
}

const daemon = timed(suite('libvirt backend (real libvirtd, domain type qemu)'));

daemon.before(async () => {
  await ensureLibvirtd();
});

daemon('a build VM that times out, local and remote: exit 1 "timed out", no domain, no volume', async () => {
  // The local one is chosen by --backend alone (qemu:///system is its default URI).
  for (const [where, args] of [['local', ['--backend', 'libvirt']], ['remote', ['--connect', remote, '--pool', pool]]] as const) {
    const out = join(tmp, `timeout-${where}`);
    // 30 min: in the full suite this may first wait for the other lane's bootstrap of the shared base.
    const r = await guestforge(['build', join(root, 'test', 'fixtures', 'profiles', 'timeout.yaml'), '-o', out, ...args, '--accel', 'tcg'], 30 * 60_000);
    assert.is(r.exitCode, 1, r.all);
    assert.match(r.all, where === 'local' ? /with libvirt qemu:\/\/\/system/ : /with libvirt qemu\+tcp:/);
    assert.match(r.all, /timed out/);
    assert.not.ok(existsSync(join(out, 'timeout.qcow2')));
    await assertNothingLeft();
  }
});

daemon('SIGTERM while the build VM runs as a remote domain: exit 143, domain and volumes gone', async () => {
  const out = join(tmp, 'signal');
  const child = guestforge(['build', join(root, 'test', 'fixtures', 'profiles', 'fail-command.yaml'), '-o', out, '--connect', remote, '--pool', pool, '--accel', 'tcg'], 10 * 60_000);
  let running: string[] = [];
  await waitUntil(async () => (running = (await virsh(remote, ['list', '--name'], { allowFailure: true })).stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('guestforge-fail-command-provision-'))).length > 0,
    { alive: () => isRunning(child), ceilingMs: 9 * 60_000, everyMs: 500 });
  assert.is(running.length, 1, 'the build VM domain never ran');
  child.kill('SIGTERM');
  const r = await child;
  assert.is(r.exitCode, 143, r.all);
  assert.match(r.all, /interrupted by SIGTERM/);
  await assertNothingLeft();
});

daemon('two profiles with --jobs 2 over a local and a remote URI: both images, a summary table, nothing left behind', async () => {
  // The local one is the shipped vRDMA profile: its build VM is a local domain (disks in place, DAC
  // label), and the stage cache it fills is what vrdma.test.ts builds on (the backend is not part of
  // a stage's key), so the suite boots that build VM once. matrix-b's build VM is a remote domain
  // (pool volumes, its disk downloaded and rebased).
  const dir = join(tmp, 'matrix');
  await mkdir(dir, { recursive: true });
  const stamp = Date.now();
  await writeFile(join(dir, 'matrix-b.yaml'), [
    // The default base with no packages (its build VM runs no apt) and no apps.
    `extends: ${join(root, 'test', 'fixtures', 'profiles', 'lean.yaml')}`,
    'name: matrix-b',
    'commands:',
    `  - echo "matrix-b ${stamp}" > /etc/matrix-build`,
  ].join('\n'));
  // So that every run proves a local build VM, an earlier run's vRDMA entries go first (the base stays).
  const store = new StageCache(join(cache, 'guestforge'));
  for (const e of await store.list()) if (e.profile === 'debian-13-vrdma' && e.stage !== 'base') await store.remove(e.stage, e.key);
  const out = join(dir, 'out');
  const r = await guestforge(['build', join(root, 'profiles', 'debian-13-vrdma.yaml'), join(dir, 'matrix-b.yaml'), '--jobs', '2', '--connect', `qemu:///system,${remote}`, '--pool', pool, '--accel', 'tcg', '--no-smoke', '-o', out,
    // matrix-b extends a test fixture from a folder of its own; each child build is passed the allowance too.
    '--allow-host-path', join(root, 'test', 'fixtures', 'profiles')]);
  assert.is(r.exitCode, 0, r.all);
  assert.match(r.stdout, /^PROFILE\s+HOST\s+RESULT\s+TIME\s+OUTPUT \/ ERROR$/m);
  assert.match(r.stdout, /^debian-13-vrdma\s+qemu:\/\/\/system\s+ok\s+\d+s\s+\S+debian-13-vrdma\.qcow2$/m);
  assert.match(r.stdout, new RegExp(`^matrix-b\\s+${remote.replace(/[+/.]/g, '\\$&')}\\s+ok\\s+\\d+s\\s+\\S+matrix-b\\.qcow2$`, 'm'));
  assert.match(r.stdout, /2 of 2 builds succeeded/);
  assert.match(r.all, /debian-13-vrdma: \[2\/6\] build VM \(cloud-init\) running/);
  const logA = await readFile(join(out, 'logs', 'debian-13-vrdma', 'build.log'), 'utf8');
  assert.match(logA, /build VM: virsh -c qemu:\/\/\/system start guestforge-debian-13-vrdma-provision-[0-9a-f]{6}/);
  // What the remote build VM wrote came back through vol-download.
  const said = await run(['guestfish', '--ro', '-a', join(out, 'matrix-b.qcow2'), '-i', 'cat', '/etc/matrix-build'], { env: { LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' }, timeoutMs: 5 * 60_000 });
  assert.is(said.stdout.trim(), `matrix-b ${stamp}`);
  const sums = await run(['sha256sum', '-c', 'SHA256SUMS'], { cwd: out, allowFailure: true });
  assert.is(sums.exitCode, 0, sums.stdout + sums.stderr);
  assert.match(sums.stdout, /debian-13-vrdma\.qcow2: OK/);
  assert.match(sums.stdout, /matrix-b\.qcow2: OK/);
  await assertNothingLeft();
});


daemon('smoke under UEFI over a remote URI: libvirt picks OVMF itself (firmware=\'efi\'), the image and seed are uploaded, the console read back, the volumes and the vars file deleted', async () => {
  const image = join(tmp, 'matrix', 'out', 'matrix-b.qcow2');
  const logDir = join(tmp, 'remote-smoke');
  const r = await guestforge(['smoke', image, '--firmware', 'uefi', '--connect', remote, '--pool', pool, '--accel', 'tcg', '--log-dir', logDir, '--verbose'], 15 * 60_000);
  assert.is(r.exitCode, 0, r.all);
  assert.match(r.stdout, /PASS  firmware\.booted  booted through uefi/);
  assert.match(r.stdout, /cloud-init\.nocloud/);
  const consoleLog = await readFile(join(logDir, 'smoke-console-uefi.log'), 'utf8');
  assert.match(consoleLog, /BdsDxe: starting Boot\d+ "UEFI Misc Device"/, 'OVMF\'s boot manager started the disk\'s removable loader');
  assert.match(consoleLog, /Cloud-init v\. \S+ finished/, 'the console came back through vol-download');
  // The "remote" daemon is this host's: libvirt kept the domain's vars beside its others, and undefine --nvram removed them.
  const nvram = await readdir('/var/lib/libvirt/qemu/nvram').catch(() => [] as string[]);
  assert.equal(nvram.filter((n) => n.startsWith('guestforge-')), [], 'no vars file of ours left');
  await assertNothingLeft();
});

daemon('several profiles where one fails: the other is still built, exit 1, the table says which', async () => {
  // The failing one stops at its base image's checksum (no VM boot needed to prove the matrix goes on).
  const out = join(tmp, 'mixed');
  const bad = await writeWrongShaProfile(join(tmp, 'mixed-bad'));
  const r = await guestforge(['build', join(root, 'profiles', 'debian-13-hpc.yaml'), bad,
    '--jobs', '2', '--connect', remote, '--pool', pool, '--accel', 'tcg', '--no-smoke', '-o', out], 20 * 60_000);
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.stdout, /^debian-13-hpc\s+\S+\s+ok\s+/m);
  assert.match(r.stdout, /^wrong-sha\s+\S+\s+FAILED\s+\d+s\s+sha256 mismatch for /m);
  assert.match(r.stdout, /1 of 2 builds succeeded/);
  assert.ok(existsSync(join(out, 'debian-13-hpc.qcow2')));
  assert.not.ok(existsSync(join(out, 'wrong-sha.qcow2')));
  await assertNothingLeft();
});

daemon.after(async () => {
  await virsh(remote, ['pool-destroy', pool], { allowFailure: true });
  await virsh(remote, ['pool-undefine', pool], { allowFailure: true });
  await rm(`/var/lib/libvirt/images/${pool}`, { recursive: true, force: true });
  if (startedDaemon) await run(['sh', '-c', 'pkill -x libvirtd; true']);
  await rm(tmp, { recursive: true, force: true });
});

xml.run();
daemon.run();
