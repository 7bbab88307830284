/**
 * Real OSv, from ../shared/osv (an OSv kernel built from the OSv sources; see
 * its README; GUESTFORGE_OSV_DIR moves it): profiles/osv-native.yaml composed
 * natively with OSv's ZFS builder kernel and smoke-booted, verify naming OSv,
 * its version and command line; a disk too small for OSv's mkfs refused before
 * any VM; a wrong builder kernel failing with a reason; SIGINT during the
 * builder VM. Every case leaves no qemu. The disk layout and the console
 * verdicts are also proven as pure functions.
 */
import { rejects } from './helpers/rejects.ts';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { running as isRunning, waitUntil } from './helpers/wait.ts';
import { run } from '../src/exec/run.ts';
import { sumFor } from '../src/os/osv/builder.ts';
import { osvVersionIn } from '../src/os/osv/cmdline.ts';
import { loaderBytes, minZfsBytes, osvLayout, zfsPartitionEntry } from '../src/os/osv/disk.ts';
import { judgeOsvConsole } from '../src/os/osv/smoke.ts';
import { sha256File } from '../src/util/fs.ts';
import { expectProblem } from '../src/profile/schema.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
/** GUESTFORGE_OSV_DIR, else the nearest shared/osv beside this checkout or one of its parents. */
function findOsvDir(): string {
  if (process.env.GUESTFORGE_OSV_DIR) return process.env.GUESTFORGE_OSV_DIR;
  for (let dir = resolve(root, '..'); ; dir = resolve(dir, '..')) {
    if (existsSync(join(dir, 'shared', 'osv', 'osv-zfs-builder.elf'))) return join(dir, 'shared', 'osv');
    if (dir === resolve(dir, '..')) return resolve(root, '..', 'shared', 'osv');
  }
}
const osvDir = findOsvDir();
/**
 * The profiles here extend the shipped osv-native from a folder of their own and take their base
 * from osvDir: the admin allows profiles/, osvDir and the shared/osv osv-native itself names.
 */
const allowOsv = [join(root, 'profiles'), osvDir, resolve(root, '..', 'shared', 'osv')].flatMap((dir) => ['--allow-host-path', dir]);
const tmp = await mkdtemp(join(tmpdir(), 'gf-osv-real-'));
const env = { XDG_CACHE_HOME: join(tmp, 'xdg'), CI: '1' };
const guestforge = (args: string[], timeoutMs = 5 * 60_000) => execa('node', [cli, ...args], { env, reject: false, all: true, timeout: timeoutMs });

/** qemu processes of this file (their disks and consoles are under tmp). */
async function leftovers(): Promise<string[]> {
  const r = await run(['pgrep', '-af', 'qemu-system'], { allowFailure: true });
  return r.stdout.split('\n').filter((l) => l.includes(tmp));
}

/** The shipped native profile with the base taken from osvDir, plus `extra` YAML lines. */
async function nativeProfile(name: string, extra: string[] = []): Promise<string> {
  const file = join(tmp, `${name}.yaml`);
  await writeFile(file, [
    `extends: ${join(root, 'profiles', 'osv-native.yaml')}`,
    `name: ${name}`,
    'base:',
    '  image:',
    `    path: ${join(osvDir, 'osv-base-empty.qcow2')}`,
    ...extra,
    '',
  ].join('\n'));
  return file;
}

const pure = suite('OSv disk layout and console verdicts (pure)');

pure('the ZFS partition entry is byte for byte the one OSv\'s build wrote into osv-base-empty', async () => {
  const raw = join(tmp, 'base.raw');
  await run(['qemu-img', 'convert', '-O', 'raw', join(osvDir, 'osv-base-empty.qcow2'), raw]);
  const head = Buffer.alloc(512);
  const { open } = await import('node:fs/promises');
  const f = await open(raw, 'r');
  await f.read(head, 0, 512, 0);
  await f.close();
  const start = head.readUInt32LE(0x1ce + 8);
  const sectors = head.readUInt32LE(0x1ce + 12);
  assert.equal(zfsPartitionEntry(start, sectors), head.subarray(0x1ce, 0x1de));
  assert.is(loaderBytes(head, 512 * 1024 * 1024), start * 512, 'a composed image: the loader ends where ZFS starts');
  const loaderFile = await readFile(join(osvDir, 'osv-loader.qemu'));
  assert.is(loaderBytes(loaderFile.subarray(0, 512), loaderFile.length), loaderFile.length, 'a kernel-only loader is all loader');
  assert.is(loaderBytes(Buffer.alloc(512), 1000), undefined, 'no boot sector');
  assert.is(osvVersionIn(loaderFile), 'OSv v0.57.0-397-g70446eb4');
  await rm(raw);
});

pure('the layout refuses a ZFS partition smaller than OSv\'s mkfs needs, naming the size to set', async () => {
  const loader = 4358144;
  assert.equal(osvLayout(loader, 128 * 1024 * 1024), { loaderBytes: loader, partitionStart: 6 * 1024 * 1024, partitionBytes: 122 * 1024 * 1024, diskBytes: 128 * 1024 * 1024 });
  assert.is(osvLayout(loader, 6 * 1024 * 1024 + minZfsBytes).partitionBytes, minZfsBytes);
  const small = await rejects(() => osvLayout(loader, 64 * 1024 * 1024), /leaves 58(\.0)? MiB for the ZFS partition .* OSv's mkfs needs at least 64(\.0)? MiB/, '64 MiB in all is too small');
  assert.match(small.hint ?? '', /set disk.size to 70M or more/);
});

pure('console verdicts: output, power state, and OSv\'s own failure line', () => {
  const ok = judgeOsvConsole(['OSv v0.57.0-397-g70446eb4', 'Cmdline: /catmsg /msg.txt', 'Hello'], { expect: 'Hello', powerOff: true, stoppedBySelf: true, timedOut: false, seconds: 4 });
  assert.equal(ok.map((c) => `${c.id} ${c.status}`), ['osv.boot pass', 'osv.output pass', 'osv.power-off pass']);
  const failed = judgeOsvConsole(['OSv v0.57.0', 'Failed to load object: /catmsg. Powering off.'], { expect: 'Hello', powerOff: true, stoppedBySelf: true, timedOut: false, seconds: 3 });
  assert.is(failed[1]?.status, 'fail');
  assert.match(failed[1]!.detail, /no console line matched \/Hello\/; OSv said: Failed to load object: \/catmsg/);
  const hung = judgeOsvConsole(['OSv v0.57.0', 'Hello'], { expect: 'Hello', powerOff: true, stoppedBySelf: false, timedOut: true, seconds: 60 });
  assert.equal(hung.map((c) => c.status), ['pass', 'pass', 'fail']);
  const server = judgeOsvConsole(['OSv v0.57.0', 'listening'], { expect: 'listening', powerOff: false, stoppedBySelf: false, timedOut: false, seconds: 5 });
  assert.equal(server.map((c) => `${c.id} ${c.status}`), ['osv.boot pass', 'osv.output pass', 'osv.stays-up pass']);
  assert.is(judgeOsvConsole(['nothing'], { powerOff: true, stoppedBySelf: true, timedOut: false, seconds: 1 })[0]?.status, 'fail');
  assert.is(sumFor('362a  x\nabc\n' + `${'a'.repeat(64)}  osv-zfs-builder.elf\n`, 'osv-zfs-builder.elf'), 'a'.repeat(64));
  assert.is(sumFor(`${'b'.repeat(64)} *./osv-zfs-builder.elf\n`, 'osv-zfs-builder.elf'), 'b'.repeat(64));
  assert.is(sumFor(`${'c'.repeat(64)}  other.elf\n`, 'osv-zfs-builder.elf'), undefined);
});

pure('smoke.expect from a hostile profile: no back-references or nested quantifiers, located by validate', async () => {
  assert.is(expectProblem('Hello from guestforge on OSv'), undefined);
  assert.is(expectProblem('(ab|cd)*x{2,}'), undefined);
  assert.match(expectProblem('^(a+)+$') ?? '', /quantified group holding a quantifier/);
  assert.match(expectProblem('(x)\\1') ?? '', /back-references/);
  assert.match(expectProblem('[(') ?? '', /not a regular expression/);
  const file = join(tmp, 'redos.yaml');
  await writeFile(file, `extends: ${join(root, 'profiles', 'osv-native.yaml')}\nsmoke:\n  expect: "^(a+)+$"\n`);
  const r = await guestforge(['validate', file, ...allowOsv]);
  assert.is(r.exitCode, 2, r.all);
  assert.match(r.all, /redos\.yaml:3:11 smoke\.expect: a quantified group holding a quantifier/);
});

const real = timed(suite('real OSv under TCG'));

real.before(() => {
  assert.ok(existsSync(join(osvDir, 'osv-zfs-builder.elf')), `the OSv images are expected in ${osvDir} (GUESTFORGE_OSV_DIR)`);
});

real('osv-native composes with the ZFS builder kernel, smoke-boots with the app\'s output checked, and verify names OSv', async () => {
  const profile = await nativeProfile('osv-native');
  const out = join(tmp, 'out');
  const junit = join(tmp, 'osv.xml');
  const r = await guestforge(['build', profile, '-o', out, '--junit', junit, '--accel', 'tcg', ...allowOsv]);
  assert.is(r.exitCode, 0, r.all);
  assert.match(r.all, /compose the OSv image .*loader 6144 KiB \+ ZFS 122 MiB; 2 paths/);
  assert.match(r.all, /PASS {2}osv\.output {2}matched \/Hello from guestforge on OSv\/: Hello from guestforge on OSv/);
  assert.match(r.all, /PASS {2}osv\.power-off {2}powered off by itself/);
  const manifest = JSON.parse(await readFile(join(out, 'osv-native.manifest.json'), 'utf8'));
  assert.equal(manifest.smoke.checks.map((c: { id: string; status: string }) => `${c.id} ${c.status}`), ['osv.boot pass', 'osv.output pass', 'osv.power-off pass']);
  assert.match(await readFile(junit, 'utf8'), /name="osv\.output"/);
  const v = await guestforge(['verify', join(out, 'osv-native.qcow2'), '--json']);
  assert.is(v.exitCode, 0, v.all);
  const report = JSON.parse(v.stdout);
  assert.equal([report.os.family, report.os.version, report.cmdline], ['osv', 'OSv v0.57.0-397-g70446eb4', '/catmsg /msg.txt']);
  assert.is(report.zfs.start, 6 * 1024 * 1024);
  // A Linux profile decides against an image that looks like OSv.
  const linux = await guestforge(['verify', join(out, 'osv-native.qcow2'), '--profile', join(root, 'profiles', 'debian-12-hpc.yaml')]);
  assert.is(linux.exitCode, 1, linux.all);
  assert.match(linux.all, /looks like an OSv image \(OSv v0\.57\.0-397-g70446eb4\), but the profile is a debian one/);
  // The smoke command on its own: the same image, another expectation that does not hold.
  const s = await guestforge(['smoke', join(out, 'osv-native.qcow2'), '--expect', 'Goodbye', '--accel', 'tcg']);
  assert.is(s.exitCode, 1, s.all);
  assert.match(s.stdout, /FAIL {2}osv\.output {2}no console line matched \/Goodbye\//);
  assert.equal(await leftovers(), []);
});

real('a disk too small for OSv\'s mkfs: exit 1 naming the size to set, no builder VM, no output', async () => {
  const profile = await nativeProfile('osv-small', ['disk:', '  size: 64M']);
  const out = join(tmp, 'small');
  const r = await guestforge(['build', profile, '-o', out, '--accel', 'tcg', ...allowOsv]);
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.all, /OSv's mkfs needs at least 64(\.0)? MiB/);
  assert.match(r.all, /set disk\.size to 70M or more/);
  assert.not.match(r.all, /OSv builder VM/);
  assert.not.ok(existsSync(join(out, 'osv-small.qcow2')));
  assert.equal(await leftovers(), []);
});

real('a builder kernel that is no kernel (pinned by its sha256): exit 1 with qemu\'s reason, no qemu left; a wrong sha256 stops before any VM', async () => {
  const fake = join(tmp, 'not-a-builder.elf');
  await writeFile(fake, 'not a kernel\n');
  const profile = await nativeProfile('osv-badbuilder', ['  builder:', `    path: ${fake}`, `    sha256: ${await sha256File(fake)}`, 'build:', '  timeout: 2m']);
  const r = await guestforge(['build', profile, '-o', join(tmp, 'bad'), '--accel', 'tcg', ...allowOsv]);
  assert.is(r.exitCode, 1, r.all);
  // qemu refuses the file itself: its own words are the reason (a kernel that boots but is no OSv says so by its missing banner).
  assert.match(r.all, /the OSv builder VM failed to start: qemu: invalid kernel header/);
  assert.equal(await leftovers(), []);
  const wrongSum = await nativeProfile('osv-wrongsum', ['  builder:', `    path: ${fake}`, `    sha256: "${'0'.repeat(64)}"`]);
  const w = await guestforge(['build', wrongSum, '-o', join(tmp, 'bad2'), '--accel', 'tcg', ...allowOsv]);
  assert.is(w.exitCode, 1, w.all);
  assert.match(w.all, /sha256 mismatch for .*not-a-builder\.elf/);
});

real('a smoke VM past build.smokeTimeout: exit 1, osv.power-off says it was still running, no qemu left', async () => {
  const profile = await nativeProfile('osv-timeout', ['build:', '  smokeTimeout: 1s']);
  const r = await guestforge(['build', profile, '-o', join(tmp, 'timeout'), '--accel', 'tcg', ...allowOsv]);
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.all, /FAIL {2}osv\.power-off {2}still running after \d+ s/);
  assert.equal(await leftovers(), []);
});

real('SIGINT while the builder VM runs: exit 130, qemu gone, no output', async () => {
  const profile = await nativeProfile('osv-sigint');
  const out = join(tmp, 'sigint');
  const child = execa('node', [cli, 'build', profile, '-o', out, '--accel', 'tcg', ...allowOsv], { env, reject: false, all: true, timeout: 5 * 60_000 });
  let running: string[] = [];
  await waitUntil(async () => (running = (await leftovers()).filter((l) => l.includes('osv-zfs-builder'))).length > 0, { alive: () => isRunning(child), ceilingMs: 4 * 60_000, everyMs: 100 });
  assert.is(running.length, 1, 'the builder VM never ran');
  child.kill('SIGINT');
  const r = await child;
  assert.is(r.exitCode, 130, r.all);
  assert.equal(await leftovers(), []);
  assert.not.ok(existsSync(join(out, 'osv-sigint.qcow2')));
});

real.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

pure.run();
real.run();
