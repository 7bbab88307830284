/**
 * npm run bench
 * Both Debian releases side by side, in one run and one fresh stage cache: debian-13-hpc and
 * debian-12-hpc each built cold (smoke included), rehearsed at 1 and 2 nodes with the vTorque
 * cluster file (the default release also at 4 nodes, and the hpcc example across 2), and
 * their vRDMA profiles built on the same bases; then one table: cold build,
 * image size, smoke boot split into firmware + GRUB, kernel and userspace, job-ready at 1 and 2
 * nodes. The Debian 12 profiles are built here, not in npm test.
 *
 * npm run bench -- profile.yaml [--runs cold,app,app-nosmoke,packages,same,rehearse,rehearse2,dib]
 * Builds one profile the way a user would,
 * through the CLI, and prints per-stage wall times and the image size from
 * the manifest. All runs share one fresh stage cache, in order:
 *   cold      empty cache (mmdebstrap included); then where the image's
 *             data goes (du of the usual heavy folders, one read-only launch)
 *   app       only the first app's content changed: inject onward
 *   app-nosmoke  the same with another change, built with --no-smoke
 *   bios      the profile made for SeaBIOS only (disk.firmware: bios): the hybrid default's cost in size and boot
 *   packages  one package added: provision onward
 *   same      nothing changed: every cached stage hits
 *   rehearse  the last image booted as a vTorque node (clusters/vtorque.yaml):
 *             job-ready latency, cloud-init done, job time
 *   rehearse2 the same with two nodes booted side by side: job-ready of the
 *             slower, the MPI job's wall time, ib_send_bw between the VMs
 *             (with a vrdma profile: npm run bench -- profiles/debian-12-vrdma.yaml);
 *             rehearse3 … rehearse8 the same with that many nodes (3 on: the segment's hub)
 *   hpcc      profiles/debian-13-hpcc.yaml built on the same cache and rehearsed
 *             across 2 nodes with clusters/vtorque-hpcc.yaml: an admin's own
 *             MPI application as the job (its wall time, VM start → its end)
 *   dib       diskimage-builder's cold build of what the profile builds: the same suite
 *             from the same mirror, -p with the same packages (what the profile bootstraps:
 *             MPI, NFS, METIS; and its build VM's), elements debian-minimal vm
 *             cloud-init-datasources (NoCloud), when disk-image-create is on PATH
 *             (scripts/bench-packages.txt): time, size, and its smoke boot; where the
 *             kernel has no device-mapper (these containers) its vm element cannot
 *             partition, so it builds without vm (one filesystem, no boot loader) and is
 *             timed, not booted
 * Then one table of every figure against issue 34's targets, in seconds and as multiples of the
 * run's floor, each with what it does on KVM, and the boot chart of the run.
 * --out DIR: keep each build's output folder (image, manifest, logs with the consoles and the
 * smoke boot's plot) under DIR instead of the run's temp folder.
 * --image FILE: the rehearse runs use this image instead of the last build's
 * (e.g. --image out/debian-12-vrdma.qcow2 --runs rehearse,rehearse2).
 * --chart FILE: where the boot chart goes (default docs/bench-boot.svg): per image the floor,
 * then the smoke boot's firmware + GRUB, kernel and userspace, and the 1-node rehearsal's
 * job-ready and cloud-init done, to scale (scripts/boot-chart.ts).
 * A benchmark, not a test: it prints figures and fails only when a build fails.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { mirrorLines } from '../src/host/apt-sources.ts';
import { execa } from 'execa';
import { formatBootTiming } from '../src/smoke/boot-timing.ts';
import { clusterCostLine } from '../src/rehearse/report.ts';
import type { BootTiming } from '../src/model/smoke.ts';
import { GuestSession } from '../src/guestfs/session.ts';
import { mountGuest } from '../src/verify/mount.ts';
import { floorBoot, floorInitramfs, imageKernel } from './floor.ts';
import { bootChart } from './boot-chart.ts';
import { baselineToolsHook, dibInvocation } from './dib.ts';

const root = resolve(import.meta.dirname, '..');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { runs: { type: 'string' }, image: { type: 'string' }, chart: { type: 'string' }, out: { type: 'string' } },
});
const profile = resolve(positionals[0] ?? join(root, 'profiles', 'debian-13-hpc.yaml'));
// No profile and no --runs: the two releases side by side. A profile alone: the single-profile runs.
const runs = values.runs === undefined && positionals.length === 0 && !values.image
  ? undefined
  : (values.runs ?? 'cold,app,app-nosmoke,packages,same,rehearse,rehearse2,dib').split(',').filter(Boolean);
const work = await mkdtemp(join(tmpdir(), 'gf-bench-'));
const cache = join(work, 'cache');
/** Where each build writes its image, records and logs: --out DIR keeps them (e.g. for --image later); else the run's temp folder. */
const outRoot = values.out ? resolve(values.out) : work;

interface Manifest {
  name: string;
  accel: string;
  outputs: { file: string; bytes: number }[];
  disk?: { virtualBytes: number; dataBytes: number };
  timings: { stage: string; ms: number; note?: string }[];
  smoke?: { bootMs?: number; boot?: BootTiming };
  /** One smoke boot per firmware the image claims (absent when it claims one). */
  smokes?: { firmware?: string; bootMs?: number; boot?: BootTiming }[];
  base?: { cached: boolean };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The profile this run builds: the given one, or a layer over it with one change. */
async function variant(kind: string): Promise<string> {
  if (kind === 'cold' || kind === 'same') return profile;
  const plan = await planOf(profile);
  const file = join(work, `${kind}.yaml`);
  if (kind === 'app' || kind === 'app-nosmoke') {
    const [first] = plan.profile.apps;
    if (!first) throw new Error('bench: the app run needs a profile with apps');
    const changed = join(work, `changed-${kind}`);
    await writeFile(changed, `${await readFile(first.src, 'utf8')}\n# changed by bench ${kind} ${Date.now()}\n`);
    // extends appends lists and an app's dest may appear once: the resolved profile itself, its first app's content changed.
    await writeFile(file, `${JSON.stringify({ ...plan.profile, apps: [{ ...first, src: changed }, ...plan.profile.apps.slice(1)] }, null, 2)}\n`);
  } else if (kind === 'packages') {
    await writeFile(file, `extends: ${profile}\npackages: [tree]\n`);
  } else if (kind === 'bios') {
    // The same image made for SeaBIOS only (the MBR layout, grub-pc, no ESP or signed chain): what hybrid, the default, costs.
    await writeFile(file, `extends: ${profile}\nname: ${plan.profile.name}-bios\ndisk: { firmware: bios, secureBoot: false }\n`);
  } else {
    throw new Error(`bench: unknown run "${kind}" (cold, app, app-nosmoke, packages, same, bios, rehearse, rehearse2…rehearse8, hpcc, dib)`);
  }
  return file;
}

/** The rehearsal figures of an image: what every job pays before it can start. */
interface RehearseReport {
  ok?: boolean; jobReadyMs?: number; cloudInitDoneMs?: number; clusterCost?: { packagesMs?: number; runcmdMs?: number }; jobMs?: number; jobEndMs?: number; mpiMs?: number; rdmaBetweenVms?: string;
  job?: { id: string; exitCode?: number; stdoutTail: string };
  checks?: { id: string; status: string; detail: string }[];
}

let rehearsals = 0;
/** A rehearsal at `nodes` VMs (with the shipped cluster file unless `args` names another) and its figures. */
async function rehearse(image: string, nodes: number, args: string[] = []): Promise<RehearseReport> {
  process.stderr.write(`bench: rehearse ${image} --nodes ${nodes} ${args.join(' ')}\n`);
  // Its logs (consoles, each VM's boot plot) beside the builds' (--out keeps them).
  const logDir = join(outRoot, `rehearse-${basename(image, '.qcow2')}-${nodes}${args.length ? `-${rehearsals += 1}` : ''}`);
  const r = await execa('node', [join(root, 'bin', 'guestforge.js'), 'rehearse', image, '--json', '--nodes', String(nodes), '--log-dir', logDir, ...args], { env: { XDG_CACHE_HOME: cache, CI: '1' }, reject: false, all: false });
  const report = JSON.parse(r.stdout || '{}') as RehearseReport;
  const or = (ms?: number) => (ms !== undefined ? `${secs(ms)}${runFloorMs ? ` (${(ms / runFloorMs).toFixed(1)}× the floor)` : ''}` : '—');
  console.log(`\nrehearse ${image}, ${nodes} node(s)${args.length ? ` ${args.join(' ')}` : ''} (${report.ok ? 'passed' : `FAILED, exit ${r.exitCode}: ${(report.checks ?? []).filter((c) => c.status === 'fail').map((c) => c.id).join(', ') || r.stderr.trim().split('\n').pop()}`})`);
  console.log(`  job-ready  ${or(report.jobReadyMs)}  VM start → SSH as the job owner works${nodes > 1 ? ' (the slowest VM; they boot side by side)' : ''}`);
  console.log(`  cloud-init ${or(report.cloudInitDoneMs)}  VM start → cloud-init status --wait returned`);
  const cost = clusterCostLine(report);
  if (cost) console.log(`    ${cost}`);
  console.log(`  job        ${report.jobMs !== undefined ? secs(report.jobMs) : '—'}  the job's wall time (${report.job ? `${report.job.id}, exit ${report.job.exitCode ?? 'none'}` : 'not run'})`);
  console.log(`  job's end  ${or(report.jobEndMs)}  VM start → the job's end`);
  if (nodes > 1) {
    console.log(`  MPI        ${report.mpiMs !== undefined ? secs(report.mpiMs) : '—'}  the shipped example, mpirun -np ${nodes} --hostfile $PBS_NODEFILE (compile included)`);
    console.log(`  RDMA       ${report.rdmaBetweenVms ?? '—'}  ib_send_bw vnode01 → vnode02: #bytes #iters BWpeak BWavg[MB/s] MsgRate`);
  }
  if (!report.ok) process.exitCode = 1;
  return report;
}

/** The admin's-own-job example: profiles/debian-13-hpcc.yaml built on the run's cache, hpcc across 2 nodes. */
async function hpccExample(): Promise<{ built: boolean; report?: RehearseReport }> {
  const b = await build('hpcc', join(root, 'profiles', 'debian-13-hpcc.yaml'), ['--no-smoke']);
  if (!b) return { built: false };
  return { built: true, report: await rehearse(b.image, 2, ['--cluster', join(root, 'clusters', 'vtorque-hpcc.yaml')]) };
}

interface DibFigures { ms: number; bytes: number; bootMs?: number; elements: string; packages: string[]; suite: string; note?: string }

/** What the profile resolves to (guestforge plan --json): the fields the bench reads. */
interface Planned {
  profile: {
    name: string;
    apps: { src: string; dest: string; mode?: string; owner: string }[];
    packages: string[];
    base: { bootstrap?: { suite: string; mirror: string; packages: string[] } };
  };
}
async function planOf(target: string): Promise<Planned> {
  return JSON.parse((await execa('node', [join(root, 'bin', 'guestforge.js'), 'plan', '--json', target])).stdout) as Planned;
}

/**
 * diskimage-builder's cold build of what the profile builds, when it is installed (npm run bench
 * says how): the same suite from the same mirror, the same packages (scripts/dib.ts).
 */
async function dib(): Promise<DibFigures | undefined> {
  const found = await execa('sh', ['-c', 'command -v disk-image-create'], { reject: false });
  if (found.exitCode !== 0) {
    process.stderr.write('bench: disk-image-create is not installed (bash scripts/setup-host.sh --bench installs it): no comparison\n');
    return undefined;
  }
  const { profile: p } = await planOf(profile);
  const bootstrap = p.base.bootstrap;
  if (!bootstrap) {
    process.stderr.write('bench: the profile imports its base: no diskimage-builder comparison\n');
    return undefined;
  }
  const deviceMapper = (await execa('dmsetup', ['version'], { reject: false })).exitCode === 0;
  const out = join(outRoot, 'dib', 'debian-dib');
  const packages = [...bootstrap.packages, ...p.packages];
  const elements = join(work, 'dib-elements');
  const d = dibInvocation({ suite: bootstrap.suite, packages }, await mirrorLines(bootstrap.suite, bootstrap.mirror), deviceMapper, out, elements, join(work, 'dib-cache'));
  if (d.overrideBase) {
    // The host's own base element, copied, with the one hook this suite breaks replaced (scripts/dib.ts).
    // Its own Python (the command's #! line): another python3 may come first on PATH.
    const python = /^#!\s*(\S+)/.exec(await readFile(found.stdout.trim(), 'utf8'))?.[1] ?? '/usr/bin/python3';
    const installed = (await execa(python, ['-c', 'import diskimage_builder, os; print(os.path.dirname(diskimage_builder.__file__))'])).stdout.trim();
    await execa('mkdir', ['-p', elements]);
    await execa('cp', ['-r', '--', join(installed, 'elements', 'base'), join(elements, 'base')]);
    await writeFile(join(elements, 'base', 'pre-install.d', '03-baseline-tools'), baselineToolsHook, { mode: 0o755 });
    process.stderr.write(`bench: diskimage-builder's base element with its baseline tools for ${bootstrap.suite} (${elements})\n`);
  }
  process.stderr.write(`bench: disk-image-create ${d.argv.join(' ')}${d.note ? `; ${d.note}` : ''}\n`);
  const started = Date.now();
  const r = await execa('disk-image-create', d.argv, { env: d.env, reject: false, all: true });
  await rm(elements, { recursive: true, force: true });
  const ms = Date.now() - started;
  if (r.exitCode !== 0) {
    process.stderr.write(`${r.all?.slice(-2000)}\nbench: diskimage-builder failed (exit ${r.exitCode}): no comparison\n`);
    return undefined;
  }
  const image = `${out}.qcow2`;
  let bootMs: number | undefined;
  if (deviceMapper) {
    const smoke = await execa('node', [join(root, 'bin', 'guestforge.js'), 'smoke', image, '--json'], { env: { XDG_CACHE_HOME: cache, CI: '1' }, reject: false });
    bootMs = (JSON.parse(smoke.stdout || '{}') as { bootMs?: number }).bootMs;
  }
  const { size } = await stat(image);
  console.log(`\ndiskimage-builder (${d.elements.join(' ')}, ${bootstrap.suite}, -p ${packages.join(',')}${d.note ? `; ${d.note}` : ''}): ${secs(ms)}, ${mib(size)}${bootMs ? `, smoke result after ${secs(bootMs)}` : ''}`);
  return { ms, bytes: size, elements: d.elements.join(' '), packages, suite: bootstrap.suite, ...(bootMs ? { bootMs } : {}), ...(d.note ? { note: d.note } : {}) };
}

/** Where the default image's data goes (one read-only appliance launch): the size budget's evidence. */
const heavy = [
  '/usr/lib/modules', '/usr/lib/firmware', '/boot', '/usr/lib/python3', '/usr/lib/python3.11', '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu/openmpi', '/usr/lib/gcc', '/usr/libexec', '/usr/include', '/usr/share', '/usr/share/perl', '/usr/lib/x86_64-linux-gnu/perl',
  '/usr/bin', '/usr/sbin', '/var/lib/apt/lists', '/var/cache', '/var/lib/dpkg', '/var/log', '/opt-vm',
];
async function sizeBreakdown(image: string): Promise<void> {
  const session = await GuestSession.open([{ path: image, format: 'qcow2', readonly: true }], { accel: 'tcg', smp: 2 });
  try {
    await mountGuest(session, { readonly: true, inspect: false });
    const statvfs = await session.lines('statvfs', '/');
    const field = (name: string) => Number(statvfs.find((l) => l.startsWith(`${name}: `))?.split(': ')[1]);
    const used = (field('blocks') - field('bfree')) * field('bsize');
    console.log(`  where the data goes (du, of ${mib(used)} used in /):`);
    const rows: [string, number][] = [];
    for (const path of heavy) {
      if (!(await session.bool('is-dir', path))) continue;
      rows.push([path, Number(await session.call('du', path)) * 1024]);
    }
    for (const [path, bytes] of rows.sort((a, b) => b[1] - a[1])) console.log(`    ${mib(bytes).padStart(8)}  ${path}`);
  } finally {
    await session.close();
  }
}

/** One build through the CLI, its manifest's figures printed; undefined when it failed. */
async function build(kind: string, target: string, extra: string[] = []): Promise<{ m: Manifest; wall: number; image: string } | undefined> {
  const out = join(outRoot, `out-${kind}`);
  process.stderr.write(`bench: ${kind} build of ${target}\n`);
  const started = Date.now();
  const r = await execa('node', [join(root, 'bin', 'guestforge.js'), 'build', target, '-o', out, ...extra], {
    env: { XDG_CACHE_HOME: cache, CI: '1' },
    reject: false,
    all: true,
  });
  const wall = Date.now() - started;
  if (r.exitCode !== 0) {
    process.stderr.write(`${r.all}\nbench: the ${kind} build failed (exit ${r.exitCode})\n`);
    process.exitCode = 1;
    return undefined;
  }
  const files = (await execa('ls', [out])).stdout.split('\n');
  const manifestFile = files.find((f) => f.endsWith('.manifest.json'))!;
  const m = JSON.parse(await readFile(join(out, manifestFile), 'utf8')) as Manifest;
  console.log(`\n${kind} build of ${m.name} (accel ${m.accel}${m.base?.cached ? ', base from cache' : ''})`);
  for (const t of m.timings) console.log(`  ${t.stage.padEnd(10)} ${secs(t.ms).padStart(8)}  ${t.note ?? ''}`);
  console.log(`  ${'total'.padEnd(10)} ${secs(wall).padStart(8)}  (wall clock, CLI start to exit)`);
  for (const o of m.outputs) console.log(`  image      ${mib(o.bytes).padStart(8)}  ${o.file}${m.disk ? ` (its disk: ${mib(m.disk.dataBytes)} of data in ${mib(m.disk.virtualBytes)})` : ''}`);
  if (m.smoke?.bootMs !== undefined) console.log(`  smoke boot ${secs(m.smoke.bootMs).padStart(8)}  to the result line`);
  if (m.smoke?.boot) for (const line of formatBootTiming(m.smoke.boot)) console.log(`    ${line}`);
  return { m, wall, image: join(out, m.outputs[0]!.file) };
}

/**
 * The floor with this image's own kernel (scripts/floor.ts): the faster of two direct-kernel
 * boots into a busybox initramfs, on the cluster's machine, measured now.
 */
async function floor(image: string): Promise<{ ms: number; kernel: string } | undefined> {
  try {
    const dir = join(work, 'floor');
    await execa('mkdir', ['-p', dir]);
    const initrd = await floorInitramfs(dir);
    const kernel = await imageKernel(image, dir);
    const runs = [await floorBoot(kernel.path, initrd), await floorBoot(kernel.path, initrd)];
    const ms = Math.min(...runs);
    console.log(`  floor      ${secs(ms).padStart(8)}  qemu -kernel ${kernel.version} into busybox and off (pc, Penryn, 1 vCPU, TCG; runs ${runs.map(secs).join(', ')})`);
    return { ms, kernel: kernel.version };
  } catch (error) {
    process.stderr.write(`bench: no floor: ${String(error)}\n`);
    return undefined;
  }
}

/** What one release's default profile measured: a column of the side-by-side table. */
interface ReleaseFigures {
  name: string;
  floor?: { ms: number; kernel: string };
  coldMs?: number;
  imageBytes?: number;
  dataBytes?: number;
  smokeMs?: number;
  boot?: BootTiming;
  one?: RehearseReport;
  two?: RehearseReport;
  /** The default release only: four VMs (the segment's hub), and the hpcc example across two. */
  four?: RehearseReport;
  hpcc?: { built: boolean; report?: RehearseReport };
  vrdma?: { name: string; ok: boolean; smokeMs?: number };
}

/**
 * `npm run bench` without a profile: both Debian releases in one run, each cold (its own base),
 * rehearsed at 1 and 2 nodes, and its vRDMA profile built on the same base; then one table.
 */
async function releases(): Promise<void> {
  const columns: ReleaseFigures[] = ['13', '12'].map((release) => ({ name: `debian-${release}-hpc` }));
  const images = new Map<ReleaseFigures, string>();
  // Phase by phase, both releases in each, the table after each phase: a run cut short still
  // compares the releases on what it measured (builds and sizes first, the longest runs last).
  for (const col of columns) {
    const b = await build(`cold-${col.name}`, join(root, 'profiles', `${col.name}.yaml`));
    if (!b) continue;
    images.set(col, b.image);
    Object.assign(col, { coldMs: b.wall, imageBytes: b.m.outputs[0]?.bytes, dataBytes: b.m.disk?.dataBytes, smokeMs: b.m.smoke?.bootMs, boot: b.m.smoke?.boot });
    await sizeBreakdown(b.image).catch((error: unknown) => process.stderr.write(`bench: no size breakdown: ${String(error)}\n`));
    col.floor = await floor(b.image);
  }
  printReleases(columns);
  for (const col of columns) if (images.has(col)) col.one = await rehearse(images.get(col)!, 1);
  printReleases(columns);
  for (const col of columns) if (images.has(col)) col.two = await rehearse(images.get(col)!, 2);
  printReleases(columns);
  // The default release: four VMs through the segment's hub, then an admin's own application (hpcc) across two.
  const main = columns[0]!;
  if (images.has(main)) {
    main.four = await rehearse(images.get(main)!, 4);
    main.hpcc = await hpccExample();
  }
  printReleases(columns);
  for (const col of columns) {
    const vrdma = col.name.replace(/-hpc$/, '-vrdma');
    const v = await build(vrdma, join(root, 'profiles', `${vrdma}.yaml`));
    col.vrdma = { name: vrdma, ok: Boolean(v), ...(v?.m.smoke?.bootMs !== undefined ? { smokeMs: v.m.smoke.bootMs } : {}) };
  }
  printReleases(columns);
}

/** Where the run draws its boot chart (--chart FILE; the README shows docs/bench-boot.svg). */
const chartFile = resolve(values.chart ?? join(root, 'docs', 'bench-boot.svg'));

/**
 * The boot chart of what has been measured (scripts/boot-chart.ts): per image the floor, then the
 * smoke boot's firmware + GRUB, kernel and userspace, and the 1-node rehearsal's job-ready and
 * cloud-init done, to scale.
 */
function writeChart(columns: Pick<ReleaseFigures, 'name' | 'floor' | 'boot' | 'one'>[]): void {
  const measured = columns.filter((c) => c.boot || c.floor);
  if (measured.length === 0) return;
  const chart = bootChart(measured.map((c) => ({
    name: c.name,
    ...(c.floor ? { floorMs: c.floor.ms } : {}),
    ...(c.boot?.beforeKernelMs !== undefined ? { beforeKernelMs: c.boot.beforeKernelMs } : {}),
    ...(c.boot?.kernelMs !== undefined ? { kernelMs: c.boot.kernelMs + (c.boot.initrdMs ?? 0) } : {}),
    ...(c.boot?.userspaceMs !== undefined ? { userspaceMs: c.boot.userspaceMs } : {}),
    ...(c.one?.jobReadyMs !== undefined ? { jobReadyMs: c.one.jobReadyMs } : {}),
    ...(c.one?.cloudInitDoneMs !== undefined ? { cloudInitDoneMs: c.one.cloudInitDoneMs } : {}),
  })), `Boot under TCG, 2 cores, npm run bench of ${new Date().toISOString().slice(0, 10)}: smoke boot and 1-node rehearsal against the floor`);
  writeFileSync(chartFile, chart);
  console.log(`\nboot chart: ${chartFile}`);
}

/** The side-by-side table of what has been measured so far, and the boot chart of it. */
function printReleases(columns: ReleaseFigures[]): void {
  writeChart(columns);
  const or = (ms?: number) => (ms === undefined ? '—' : secs(ms));
  // A boot figure in seconds and as a multiple of its own column's floor, measured in this run.
  const boot = (c: ReleaseFigures, ms?: number) => (ms === undefined ? '—' : `${secs(ms)}${c.floor ? ` (${(ms / c.floor.ms).toFixed(1)}×)` : ''}`);
  const rows: [string, (c: ReleaseFigures) => string][] = [
    ['floor: qemu -kernel into busybox (its own kernel)', (c) => (c.floor ? `${secs(c.floor.ms)} (${c.floor.kernel})` : '—')],
    ['cold build with smoke (wall)', (c) => or(c.coldMs)],
    ['image, zstd qcow2', (c) => (c.imageBytes !== undefined ? mib(c.imageBytes) : '—')],
    ['data in the image', (c) => (c.dataBytes !== undefined ? mib(c.dataBytes) : '—')],
    ['smoke: qemu start → result line', (c) => boot(c, c.smokeMs)],
    ['  firmware + GRUB', (c) => boot(c, c.boot?.beforeKernelMs)],
    ['  kernel (+ initramfs)', (c) => boot(c, c.boot?.kernelMs !== undefined ? c.boot.kernelMs + (c.boot.initrdMs ?? 0) : undefined)],
    ['  userspace to the report', (c) => boot(c, c.boot?.userspaceMs)],
    ['rehearsal, 1 node: job-ready (SSH as the owner)', (c) => boot(c, c.one?.jobReadyMs)],
    ['rehearsal, 1 node: cloud-init done', (c) => boot(c, c.one?.cloudInitDoneMs)],
    ['rehearsal, 1 node: VM start → the job\'s end', (c) => boot(c, c.one?.jobEndMs)],
    ['rehearsal, 2 nodes: job-ready (slower VM)', (c) => boot(c, c.two?.jobReadyMs)],
    ['rehearsal, 2 nodes: MPI example', (c) => or(c.two?.mpiMs)],
    ['rehearsal, 4 nodes: job-ready (slowest VM)', (c) => boot(c, c.four?.jobReadyMs)],
    ['rehearsal, 4 nodes: MPI example across all four', (c) => or(c.four?.mpiMs)],
    ['hpcc example, 2 nodes: job wall / VM start → job end', (c) => (c.hpcc?.report ? `${or(c.hpcc.report.jobMs)} / ${boot(c, c.hpcc.report.jobEndMs)}` : c.hpcc ? 'NOT BUILT' : '—')],
    ['rehearsals passed (1 / 2 / 4 nodes / hpcc)', (c) => [c.one, c.two, c.four, c.hpcc?.report].map((r) => (r ? (r.ok ? 'yes' : 'NO') : '—')).join(' / ')],
    ['vRDMA profile built and smoke-booted', (c) => (c.vrdma ? `${c.vrdma.ok ? 'yes' : 'NO'} (${c.vrdma.name}${c.vrdma.smokeMs !== undefined ? `, result after ${secs(c.vrdma.smokeMs)}` : ''})` : '—')],
  ];
  console.log(`\n| figure (TCG, 2 cores, this run; × its column's floor) | ${columns.map((c) => c.name).join(' | ')} |`);
  console.log(`| --- |${columns.map(() => ' --- |').join('')}`);
  for (const [label, cell] of rows) console.log(`| ${label} | ${columns.map(cell).join(' | ')} |`);
}

let lastImage: string | undefined = values.image ? resolve(values.image) : undefined;
/** This run's floor, once measured (a cold build's image, or --image's): rehearsal figures print as its multiples. */
let runFloorMs: number | undefined;
/** The figures of this one run, for the table and the chart at the end. */
const figures: {
  name?: string; floorMs?: number; dataBytes?: number; smokeMs?: number; boot?: BootTiming; one?: RehearseReport; two?: RehearseReport;
  /** The profile built for SeaBIOS only (run `bios`): the cost of the hybrid default, in size and boot. */
  biosOnly?: { imageBytes?: number; dataBytes?: number; smokeMs?: number; boot?: BootTiming };
  /** The same image's smoke boot under OVMF on q35 (with Secure Boot when the profile proves it): issue 36's second firmware. */
  uefi?: { firmware: string; smokeMs?: number; boot?: BootTiming };
  imageBytes?: number; coldMs?: number; coldNoSmokeMs?: number; appMs?: number; appSmokeMs?: number; appNoSmokeMs?: number; dib?: DibFigures;
} = {};
try {
  if (!runs) {
    await releases();
  } else {
    // --image: the floor with that image's kernel, before anything else boots.
    if (lastImage) figures.floorMs = runFloorMs = (await floor(lastImage))?.ms;
    for (const kind of runs) {
      const rehearseNodes = /^rehearse([2-8])?$/.exec(kind);
      if (rehearseNodes) {
        if (lastImage) {
          const r = await rehearse(lastImage, Number(rehearseNodes[1] ?? 1));
          if (kind === 'rehearse') figures.one = r;
          if (kind === 'rehearse2') figures.two = r;
        } else process.stderr.write('bench: rehearse needs a build run before it\n');
        continue;
      }
      if (kind === 'hpcc') {
        await hpccExample();
        continue;
      }
      if (kind === 'dib') {
        // The yardstick failing is said, and the run's own figures still printed.
        figures.dib = await dib().catch((error: unknown) => {
          process.stderr.write(`bench: diskimage-builder's run failed: ${String(error)}\n`);
          return undefined;
        });
        continue;
      }
      // A variant is a profile in the run's folder naming the profile's own files: allowed explicitly.
      const allow = kind === 'cold' || kind === 'same' ? [] : ['--allow-host-path', dirname(profile)];
      const b = await build(kind, await variant(kind), [...allow, ...(kind === 'app-nosmoke' ? ['--no-smoke'] : [])]);
      if (!b) break;
      const { m, wall } = b;
      lastImage = b.image;
      const smokeStage = m.timings.find((t) => t.stage === 'smoke')?.ms;
      if (kind === 'cold') {
        await sizeBreakdown(lastImage).catch((error: unknown) => process.stderr.write(`bench: no size breakdown: ${String(error)}\n`));
        figures.floorMs = runFloorMs = (await floor(lastImage))?.ms;
        Object.assign(figures, { name: m.name, coldMs: wall, coldNoSmokeMs: wall - (smokeStage ?? 0), imageBytes: m.outputs[0]?.bytes, dataBytes: m.disk?.dataBytes });
      }
      if (m.smoke?.bootMs !== undefined && (kind === 'cold' || (kind === 'same' && figures.smokeMs === undefined))) {
        Object.assign(figures, { smokeMs: m.smoke.bootMs, boot: m.smoke.boot });
        const uefi = m.smokes?.find((x) => x.firmware?.startsWith('uefi'));
        if (uefi) figures.uefi = { firmware: uefi.firmware!, ...(uefi.bootMs !== undefined ? { smokeMs: uefi.bootMs } : {}), ...(uefi.boot ? { boot: uefi.boot } : {}) };
      }
      if (kind === 'bios') figures.biosOnly = { imageBytes: m.outputs[0]?.bytes, dataBytes: m.disk?.dataBytes, smokeMs: m.smoke?.bootMs, ...(m.smoke?.boot ? { boot: m.smoke.boot } : {}) };
      if (kind === 'app') Object.assign(figures, { appMs: wall, appSmokeMs: smokeStage });
      if (kind === 'app-nosmoke') figures.appNoSmokeMs = wall;
    }
    printTable();
    writeChart([{
      name: figures.name ?? 'image', floor: figures.floorMs !== undefined ? { ms: figures.floorMs, kernel: '' } : undefined,
      boot: figures.boot, one: figures.one,
    }]);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}

/** The smoke boot under OVMF, beside SeaBIOS's rows: the same split, the same image (both on a disk grown by 2 GiB). */
function uefiRows(u: (typeof figures)['uefi'], or: (ms?: number) => string, x: (ms?: number) => string): [string, string, string, string, string][] {
  if (!u) return [];
  const b = u.boot;
  const kernelMs = b?.kernelMs !== undefined ? b.kernelMs + (b.initrdMs ?? 0) : undefined;
  const how = u.firmware === 'uefi-secure' ? 'OVMF on q35, Secure Boot enforced' : 'OVMF on q35';
  return [
    [`smoke under ${how}: firmware + shim + GRUB`, or(b?.beforeKernelMs), x(b?.beforeKernelMs), '', 'OVMF\'s own start (no BIOS calls: GRUB reads through UEFI\'s block I/O)'],
    [`smoke under ${how}: kernel (+ initramfs)`, or(kernelMs), x(kernelMs), '', 'as under SeaBIOS'],
    [`smoke under ${how}: userspace to the report`, or(b?.userspaceMs), x(b?.userspaceMs), '', 'as under SeaBIOS'],
    [`smoke result under ${how}`, or(u.smokeMs), x(u.smokeMs), '', 'the same image, the same checks, plus Secure Boot\'s'],
  ];
}

/** Hybrid (the default) against the same profile made for SeaBIOS only: size, and the boot under SeaBIOS. */
function biosOnlyRows(f: typeof figures, or: (ms?: number) => string): [string, string, string, string, string][] {
  const o = f.biosOnly;
  if (!o) return [];
  const delta = (a?: number, b?: number) => (a !== undefined && b ? `${mib(a)} vs ${mib(b)} (${a >= b ? '+' : '−'}${mib(Math.abs(a - b))}, ${((100 * (a - b)) / b).toFixed(1)}%)` : '—');
  return [
    ['image: hybrid vs BIOS-only (zstd qcow2)', delta(f.imageBytes, o.imageBytes), '', '', 'the ESP\'s loaders, GRUB for EFI and the signed chain'],
    ['  data in it', delta(f.dataBytes, o.dataBytes), '', '', 'the same on any host'],
    ['smoke result under SeaBIOS: hybrid vs BIOS-only', `${or(f.smokeMs)} vs ${or(o.smokeMs)}`, '', '', 'two boots of one run: TCG\'s spread between boots is a few seconds'],
    ['  before the kernel', `${or(f.boot?.beforeKernelMs)} vs ${or(o.boot?.beforeKernelMs)}`, '', '', 'GPT and a BIOS boot partition against MBR: the same GRUB core and reads'],
  ];
}

/**
 * Every figure of this run against issue 34's targets, as multiples of this run's floor, with
 * what each one does on KVM: nothing here can run KVM, so the bench says which figures are TCG's.
 */
function printTable(): void {
  const f = figures;
  const or = (ms?: number) => (ms === undefined ? '—' : secs(ms));
  const x = (ms?: number) => (ms !== undefined && f.floorMs ? `${(ms / f.floorMs).toFixed(1)}×` : '—');
  const b = f.boot;
  const kernelMs = b?.kernelMs !== undefined ? b.kernelMs + (b.initrdMs ?? 0) : undefined;
  const cost = f.one?.clusterCost;
  const share = (ms?: number) => (ms !== undefined && f.one?.cloudInitDoneMs ? ` (${Math.round((100 * ms) / f.one.cloudInitDoneMs)}% of it)` : '');
  const dibRatio = (ours?: number, theirs?: number, unit = secs) => (ours !== undefined && theirs ? `${(ours / theirs).toFixed(2)}× (${unit(ours)} vs ${unit(theirs)})` : `${ours !== undefined ? unit(ours) : '—'} (diskimage-builder not run)`);
  const tcg = 'TCG: real-mode code and BIOS disk reads emulated instruction by instruction; on KVM they run natively (about a second)';
  const cpu = 'CPU-bound: scales with the CPU, far shorter on KVM';
  const rows: [string, string, string, string, string][] = [
    ['floor: qemu -kernel into busybox, the image\'s kernel', or(f.floorMs), '1×', '—', 'the same boot, on the same machine'],
    ['smoke: firmware + GRUB (before the kernel)', or(b?.beforeKernelMs), x(b?.beforeKernelMs), '≤ 1×', tcg],
    ['  firmware, GRUB\'s start, its menu', or(b?.beforeKernel?.firmwareMs), x(b?.beforeKernel?.firmwareMs), '', 'as above'],
    ['  GRUB reads the kernel', or(b?.beforeKernel?.kernelReadMs), x(b?.beforeKernel?.kernelReadMs), '', 'as above'],
    ['  GRUB reads the initramfs, the kernel unpacks', or(b?.beforeKernel?.initrdReadMs), x(b?.beforeKernel?.initrdReadMs), '', 'as above; the unpacking is in the floor too'],
    ['smoke: kernel (+ initramfs)', or(kernelMs), x(kernelMs), '', cpu],
    ['smoke: userspace to the report', or(b?.userspaceMs), x(b?.userspaceMs), '', `${cpu} (Python's start, udev, systemd)`],
    ['smoke result (qemu start → result line)', or(f.smokeMs), x(f.smokeMs), '≤ 4×', 'the sum of the three'],
    ...uefiRows(f.uefi, or, x),
    ...biosOnlyRows(f, or),
    ['job-ready, 1 node (shipped vTorque cluster)', or(f.one?.jobReadyMs), x(f.one?.jobReadyMs), '≤ 5×', `${cpu}; the cluster's seed adds its mounts and users`],
    ['cloud-init done, 1 node', or(f.one?.cloudInitDoneMs), x(f.one?.cloudInitDoneMs), '—', 'what the job waits for when the batch system waits for cloud-init'],
    ['  the cluster\'s boot-time packages', `${or(cost?.packagesMs)}${share(cost?.packagesMs)}`, x(cost?.packagesMs), '', 'apt over the network and dpkg: paid on KVM too'],
    ['  the cluster\'s runcmd before the checks (host keys, sshd restart)', `${or(cost?.runcmdMs)}${share(cost?.runcmdMs)}`, x(cost?.runcmdMs), '', `${cpu} (vTorque's dpkg-reconfigure: perl, ucf, daemon-reloads)`],
    ['job-ready, 2 nodes (the slower VM)', or(f.two?.jobReadyMs), x(f.two?.jobReadyMs), '≤ 6×', 'two TCG VMs share 2 cores: each boots slower than alone'],
    ['app-only rebuild with smoke: wall − its smoke', f.appMs !== undefined && f.appSmokeMs !== undefined ? `${secs(f.appMs - f.appSmokeMs)} (wall ${secs(f.appMs)}, smoke ${secs(f.appSmokeMs)})` : '—', '', '≤ 5 s', 'no VM before the smoke boot'],
    [`cold build, no smoke, vs diskimage-builder${f.dib?.note ? ' (see below)' : ''}`, dibRatio(f.coldNoSmokeMs, f.dib?.ms), '', '≤ 1.2×', 'our build VM boots under TCG; diskimage-builder boots none'],
    ['image vs diskimage-builder\'s (zstd qcow2 against its qcow2)', dibRatio(f.imageBytes, f.dib?.bytes, mib), '', '≤ 0.6×', 'the same on any host'],
  ];
  console.log(`\n| figure (TCG, 2 cores, this run${f.name ? `, ${f.name}` : ''}) | measured | × floor | target | under KVM |`);
  console.log('| --- | --- | --- | --- | --- |');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  if (f.imageBytes !== undefined) console.log(`image: ${mib(f.imageBytes)}${f.dataBytes ? ` of ${mib(f.dataBytes)} data` : ''}; cold build with smoke ${or(f.coldMs)}; app-only rebuild --no-smoke ${or(f.appNoSmokeMs)}`);
  if (f.dib) {
    console.log(`diskimage-builder (${f.dib.elements}, ${f.dib.suite}, the same packages: ${f.dib.packages.join(' ')}${f.dib.note ? `; ${f.dib.note}` : ''}): image ${mib(f.dib.bytes)}${f.dib.bootMs ? `, smoke result after ${secs(f.dib.bootMs)}` : ''}`);
  }
}
