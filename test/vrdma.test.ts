/**
 * vRDMA for real under TCG: profiles/debian-13-vrdma.yaml built and
 * smoke-booted, with the soft-RoCE link, the verbs device and an ib_send_bw
 * loopback checked inside the VM, then rehearsed as two cluster nodes (MPI
 * across them, ib_send_bw between them) (its base is the default profile's, shared
 * through .test-cache/; libvirt.test.ts, earlier in its lane, builds this profile as a local libvirt domain and leaves its provision, seal and inject entries there). The build VM's kernel check runs on the host against
 * fake roots; verify's vrdma.kernel verdict on a cloud kernel is proven over
 * facts in verify.test.ts, so no second base is bootstrapped here.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const env = { XDG_CACHE_HOME: process.env.GUESTFORGE_TEST_CACHE ?? join(root, '.test-cache'), CI: '1' };
const tmp = await mkdtemp(join(tmpdir(), 'gf-vrdma-'));

const build = (profile: string, out: string, ...args: string[]) =>
  execa('node', [cli, 'build', profile, '-o', out, ...args], { env, reject: false, all: true, timeout: 40 * 60_000 });

const v = timed(suite('vRDMA (soft-RoCE) end to end'));

v('debian-13-vrdma builds, verify passes the vrdma rules, and RDMA works inside the smoke VM', async () => {
  const out = join(tmp, 'out');
  const junit = join(tmp, 'vrdma.xml');
  // SeaBIOS only: the image is hybrid, but UEFI is proven by e2e.test.ts (Secure Boot), rehearse.test.ts and libvirt.test.ts;
  // RDMA does not depend on the firmware, and a second boot with its loopback would cost the suite a minute and a half.
  const r = await build(join(root, 'profiles', 'debian-13-vrdma.yaml'), out, '--junit', junit, '--smoke-firmware', 'bios');
  assert.is(r.exitCode, 0, r.all);
  const manifest = JSON.parse(await readFile(join(out, 'debian-13-vrdma.manifest.json'), 'utf8'));
  for (const id of ['vrdma.packages', 'vrdma.kernel', 'vrdma.boot']) {
    const rule = manifest.verify.find((x: { id: string }) => x.id === id);
    assert.is(rule?.verdict, 'pass', `${id}: ${rule?.evidence}`);
  }
  const checks = new Map<string, { status: string; detail: string }>(manifest.smoke.checks.map((c: { id: string }) => [c.id, c]));
  for (const id of ['vrdma.link', 'vrdma.ibv-devices', 'vrdma.loopback']) {
    assert.is(checks.get(id)?.status, 'pass', `${id}: ${checks.get(id)?.detail}`);
  }
  assert.match(checks.get('vrdma.link')!.detail, /state ACTIVE/);
  assert.match(checks.get('vrdma.loopback')!.detail, /ib_send_bw over \S+: .* = \d+ \d+ /);
  const xml = await readFile(junit, 'utf8');
  for (const id of ['vrdma.link', 'vrdma.ibv-devices', 'vrdma.loopback', 'vrdma.kernel']) assert.match(xml, new RegExp(`name="${id.replace('.', '\\.')}"`));
  assert.match(xml, /failures="0"/);
  assert.equal(manifest.smokes, undefined, '--smoke-firmware bios: one boot');
  assert.is(manifest.smoke.firmware, 'bios');
});

v('rehearse --nodes 2: two VMs on a private segment, an MPI job across them, RDMA verbs between them, nothing left running', async () => {
  const image = join(tmp, 'out', 'debian-13-vrdma.qcow2');
  const junit = join(tmp, 'rehearse2.xml');
  // Its work folder (disks, seeds, NFS config) in a cache of its own, so what is left running is told apart from other files' VMs.
  const own = { XDG_CACHE_HOME: join(tmp, 'xdg'), CI: '1' };
  // The vTorque cluster minus its boot-time apt run and its dpkg-reconfigure of openssh-server
  // (rehearse.test.ts proves both): two VMs running apt, or the postinst's perl and daemon-reloads
  // (~200 s each), side by side under TCG would add minutes and prove nothing about the multi-node job.
  const cluster = join(tmp, 'two-nodes.yaml');
  // Its job is an admin's kind, across both VMs with Torque's environment and no rank lines; the shipped
  // MPI example is the separate mpi.ranks check (and Open MPI over UCX on rxe is tried with it).
  await writeFile(cluster, [
    'name: vtorque-no-boot-install', 'bootPackages: []', 'seed: { hostKeys: ssh-keygen }',
    'job: { command: \'mpirun -np "$PBS_NP" --hostfile "$PBS_NODEFILE" hostname | sort; echo "np=$PBS_NP job=$PBS_JOBID"\', expect: \'^vnode01\\nvnode02\\nnp=2 job=\\d+\\.vtorque-no-boot-install\' }',
    'nodes: { mpiCommand: /opt-vm/hello-mpi/bin/mpi-job.sh }', ''].join('\n'));
  const r = await execa('node', [cli, 'rehearse', image, '--cluster', cluster, '--nodes', '2', '--require', 'vrdma', '--json', '--junit', junit, '--log-dir', join(tmp, 'rehearse2')], { env: own, reject: false, all: false, timeout: 30 * 60_000 });
  const report = JSON.parse(r.stdout || '{}') as { ok: boolean; checks: { id: string; status: string; detail: string }[]; nodes?: { name: string }[]; jobReadyMs?: number; cloudInitDoneMs?: number; mpiMs?: number; rdmaBetweenVms?: string; job?: { exitCode?: number; stdout: string; env: Record<string, string> } };
  const byId = new Map(report.checks?.map((c) => [c.id, c]));
  const failed = report.checks?.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.detail}`).join('\n');
  assert.is(r.exitCode, 0, failed || r.stderr);
  for (const id of ['vnode01/vm.job-ready', 'vnode02/vm.job-ready', 'vnode01/net.private', 'vnode02/net.private', 'vnode01/nfs.home', 'vnode02/nfs.home',
    'net.vnode01-vnode02', 'net.vnode02-vnode01', 'mpi.ranks', 'vnode01/vrdma.rxe-private', 'vnode02/vrdma.rxe-private', 'vrdma.between-vms', 'job.run']) {
    assert.is(byId.get(id)?.status, 'pass', `${id}: ${byId.get(id)?.detail}`);
  }
  assert.match(byId.get('mpi.ranks')!.detail, /rank 0 of 2 on vnode0[12].*rank 1 of 2 on vnode0[12]/);
  // The admin's kind of job: across both VMs, Torque's environment, its streams as Torque names them.
  assert.match(byId.get('job.run')!.detail, /^\d+\.vtorque-no-boot-install: exit 0 after /);
  assert.is(report.job?.exitCode, 0);
  assert.is(report.job?.env.PBS_NODEFILE?.startsWith('/home/jobuser/'), true, report.job?.env.PBS_NODEFILE);
  assert.match(await readFile(report.job!.stdout, 'utf8'), /^vnode01\nvnode02\nnp=2 job=/);
  assert.match(report.job!.stdout, /STDIN\.o\d+$/);
  assert.match(byId.get('vnode02/vrdma.rxe-private')!.detail, /state ACTIVE/);
  assert.match(byId.get('vrdma.between-vms')!.detail, /192\.168\.77\.12\): #bytes .* = \d+ \d+ /);
  assert.equal(report.nodes?.map((n) => n.name), ['vnode01', 'vnode02']);
  // Figures for the log (the benchmark owns the targets): what a two-node job waits for and gets.
  const ucx = byId.get('mpi.ucx-rxe');
  process.stderr.write(`\n  two nodes: job-ready ${report.jobReadyMs} ms, cloud-init done ${report.cloudInitDoneMs} ms, MPI ${report.mpiMs} ms, ib_send_bw ${report.rdmaBetweenVms}; mpi.ucx-rxe ${ucx?.status}: ${ucx?.detail}\n`);
  assert.match(await readFile(junit, 'utf8'), /name="vrdma\.between-vms"/);
  const left = await execa('pgrep', ['-af', 'qemu-system|ganesha.nfsd'], { reject: false });
  assert.equal(left.stdout.split('\n').filter((l) => l.includes(tmp)), [], 'nothing may be left running');
});

/** Runs cloud-init/vrdma-kernel.sh on the host against a fake root (its kernels and modules), as the build VM runs it. */
async function kernelScript(root: string, vars: Record<string, string>) {
  const console = join(root, 'console');
  await writeFile(console, '');
  const r = await execa('sh', [join(import.meta.dirname, '..', 'cloud-init', 'vrdma-kernel.sh')], { env: { GF_ROOT: root, GF_CONSOLE: console, ...vars }, reject: false });
  return { ...r, console: await readFile(console, 'utf8') };
}

async function fakeKernel(root: string, version: string, rxe: boolean): Promise<void> {
  await mkdir(join(root, 'boot'), { recursive: true });
  await writeFile(join(root, 'boot', `vmlinuz-${version}`), '');
  const dir = join(root, 'lib', 'modules', version, 'kernel', 'drivers', 'infiniband', 'sw', 'rxe');
  await mkdir(dir, { recursive: true });
  if (rxe) await writeFile(join(dir, 'rdma_rxe.ko.xz'), '');
}

v('the build VM\'s kernel check: a cloud kernel with installKernel false is left for verify, and said so', async () => {
  const root = join(tmp, 'cloud-root');
  await fakeKernel(root, '6.1.0-99-cloud-amd64', false);
  const r = await kernelScript(root, { INSTALL_KERNEL: '0', KERNEL_INSTALL: 'false', KERNEL_REMOVE: 'false' });
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.console, /6\.1\.0-99-cloud-amd64 have no rdma_rxe and vrdma.installKernel is false: verify will fail/);
});

v('the build VM\'s kernel check: a missing rdma_rxe is installed, and a kernel still without it removed', async () => {
  const root = join(tmp, 'install-root');
  await fakeKernel(root, '6.1.0-99-cloud-amd64', false);
  const install = `for v; do mkdir -p "$GF_ROOT/boot" && touch "$GF_ROOT/boot/vmlinuz-6.1.0-99-amd64" && mkdir -p "$GF_ROOT/lib/modules/6.1.0-99-amd64/rxe" && touch "$GF_ROOT/lib/modules/6.1.0-99-amd64/rxe/rdma_rxe.ko"; done`;
  const remove = 'rm -f "$GF_ROOT/boot/vmlinuz-$1"; echo "removed $1" >> "$GF_ROOT/removed"';
  const r = await kernelScript(root, { INSTALL_KERNEL: '1', KERNEL_INSTALL: install, KERNEL_REMOVE: remove });
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(await readFile(join(root, 'removed'), 'utf8'), 'removed 6.1.0-99-cloud-amd64\n');
  assert.match(r.console, /rdma_rxe present in 6\.1\.0-99-amd64/);
});

v('the build VM\'s kernel check: a failing install fails the build with a reason', async () => {
  const root = join(tmp, 'fail-root');
  await fakeKernel(root, '6.1.0-99-cloud-amd64', false);
  const r = await kernelScript(root, { INSTALL_KERNEL: '1', KERNEL_INSTALL: 'exit 1', KERNEL_REMOVE: 'false' });
  assert.is.not(r.exitCode, 0);
});

v.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

v.run();
