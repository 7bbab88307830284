/**
 * End to end, with the real tools under TCG: the default profile built from
 * bootstrap and smoke-booted, then read back by an independent guestfish;
 * and the ways a build must fail cleanly. The bases are cached in
 * .test-cache/ (git-ignored), so only the first build bootstraps.
 */
import { rocmPackage } from '../src/verify/rules.ts';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { suite } from 'uvu';
import { writeWrongShaProfile } from './helpers/wrong-sha.ts';
import { leftWork } from './helpers/work.ts';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { running, waitUntil } from './helpers/wait.ts';
import { onPty } from './helpers/pty.ts';
import { run } from '../src/exec/run.ts';
import { GuestSession } from '../src/guestfs/session.ts';
import { peFacts } from '../src/verify/boot.ts';
import { prepareFirmware } from '../src/vm/firmware.ts';
import { startQemu } from '../src/vm/qemu.ts';
import { unsignPe } from './helpers/pe.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const cache = process.env.GUESTFORGE_TEST_CACHE ?? join(root, '.test-cache');
const env = { XDG_CACHE_HOME: cache, CI: '1' };

function guestforge(args: string[], options: { timeoutMs?: number } = {}): ResultPromise<{ reject: false; all: true }> {
  return execa('node', [cli, ...args], { env, reject: false, all: true, timeout: options.timeoutMs ?? 40 * 60_000 }) as ResultPromise<{ reject: false; all: true }>;
}

/** qemu processes whose command line mentions this folder (their serial log lives there). */
async function qemuUsing(dir: string): Promise<string[]> {
  const r = await run(['pgrep', '-af', 'qemu-system'], { allowFailure: true });
  return r.stdout.split('\n').filter((l) => l.includes(dir));
}

/** Work folders this file's builds left (the other lane may be building the same profiles meanwhile: a live owner's folder is not left). */
function workLeft(): Promise<string[]> {
  return leftWork(cache, ['debian-13-hpc-', 'cache-race-', 'fail-command-', 'timeout-', 'wrong-sha-']);
}

const tmp = await mkdtemp(join(tmpdir(), 'gf-e2e-'));
// The admin's key for the build VMs kept for debugging (--debug-ssh-key).
const debugKey = join(tmp, 'debug-key');
await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'guestforge-e2e-debug', '-f', debugKey]);

const failures = timed(suite('build fails cleanly'));

failures('a wrong sha256 on base.image stops the build before any VM starts', async () => {
  const dir = join(tmp, 'sha');
  const profile = await writeWrongShaProfile(dir);
  const out = join(dir, 'out');
  const r = await guestforge(['build', profile, '-o', out], { timeoutMs: 120_000 });
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.all, /sha256 mismatch/);
  assert.match(r.all, /no VM was started/);
  assert.not.ok(existsSync(join(out, 'logs', 'wrong-sha', 'build-console.log')), 'a build VM was started');
  assert.not.ok(existsSync(join(out, 'wrong-sha.qcow2')));
  assert.equal(await workLeft(), []);
});

const e2e = timed(suite('debian-13-hpc end to end (bootstrap, build VM, guestfish, smoke)'));
const out = join(tmp, 'out');

e2e('build exits 0 with the image, manifest, SHA256SUMS and a passing smoke JUnit', async () => {
  const junit = join(tmp, 'smoke.xml');
  // Built as an admin debugging would: a build VM that could be kept, with a one-time password and an SSH key on its
  // seed. It succeeds, so neither may reach the image (verify's hygiene rules below, the guestfish read later).
  const r = await guestforge(['build', join(root, 'profiles', 'debian-13-hpc.yaml'), '-o', out, '--junit', junit, '--on-error', 'keep', '--debug-ssh-key', `${debugKey}.pub`]);
  assert.is(r.exitCode, 0, r.all);
  assert.not.match(r.all, /kept as/);
  const image = join(out, 'debian-13-hpc.qcow2');
  assert.ok(existsSync(image));
  const manifest = JSON.parse(await readFile(join(out, 'debian-13-hpc.manifest.json'), 'utf8'));
  assert.equal(manifest.timings.map((t: { stage: string }) => t.stage), ['base', 'provision', 'seal', 'inject', 'verify', 'finalize', 'smoke']);
  assert.ok(manifest.packages.some((p: { name: string }) => p.name === 'cloud-init'));
  assert.ok(manifest.packages.some((p: { name: string }) => p.name === 'less'), 'profile package installed in the build VM');
  assert.is(manifest.smoke.ok, true);
  // Smoked under each firmware the hybrid image claims, SeaBIOS then OVMF with Secure Boot enforced, each on a copy
  // grown by 2 GiB as a cluster grows the disk it copies: growpart moved the root's end, the ESP and apps volume stayed.
  assert.equal(manifest.smokes.map((s: { firmware: string }) => s.firmware), ['bios', 'uefi-secure']);
  for (const s of manifest.smokes as { firmware: string; ok: boolean; grownToBytes: number; checks: { id: string; status: string; detail: string }[] }[]) {
    assert.is(s.ok, true, s.firmware);
    assert.is(s.grownToBytes, 6 * 1024 ** 3, s.firmware);
    const passed = new Map(s.checks.filter((c) => c.status === 'pass').map((c) => [c.id, c.detail]));
    assert.match(passed.get('firmware.booted') ?? '', new RegExp(`booted through ${s.firmware.replace('-secure', '')}`), s.firmware);
    assert.match(passed.get('disk.grown') ?? 'not passed', /disk 6442450944 bytes; root vda1 grown to \d+ bytes, file system \d+; partitions 2:\d+:\d+ 14:2048:2048 15:4096:131072 unchanged/, s.firmware);
  }
  const secure = manifest.smokes[1].checks.find((c: { id: string }) => c.id === 'firmware.secure-boot');
  assert.is(secure?.status, 'pass', JSON.stringify(secure));
  assert.match(secure.detail, /SecureBoot variable 1; kernel: Secure boot enabled; lockdown: .*\[integrity\]/i);
  // What verify read off the disk, and the signed chain's packages, in the manifest and the SBOM.
  assert.equal(Object.keys(manifest.firmware.bootsUnder).sort(), ['bios', 'uefi']);
  assert.match(manifest.firmware.bootsUnder.uefi, /EFI\/BOOT\/BOOTX64\.EFI on ESP partition 15, signed, with grubx64\.efi beside it \(shim\)/);
  assert.is(manifest.firmware.claims, 'hybrid');
  for (const name of ['shim-signed', 'grub-efi-amd64-signed', 'grub-cloud-amd64']) assert.ok(manifest.firmware.bootChain.some((p: { name: string }) => p.name === name), name);
  // The SBOM and provenance beside it, listed in SHA256SUMS (checked by sha256sum -c below).
  assert.match(manifest.version, /^\d{8}-[0-9a-f]{8}$/);
  const sbom = JSON.parse(await readFile(join(out, 'debian-13-hpc.spdx.json'), 'utf8'));
  assert.is(sbom.spdxVersion, 'SPDX-2.3');
  assert.match(sbom.packages[0].comment, /^Boots under BIOS and UEFI \(claims hybrid\); Secure Boot: proven by the smoke boot/);
  assert.match(sbom.packages.find((p: { name: string }) => p.name === 'shim-signed')?.comment ?? '', /boot chain/);
  const cloudInit = manifest.packages.find((p: { name: string }) => p.name === 'cloud-init');
  const sbomCloudInit = sbom.packages.find((p: { name: string }) => p.name === 'cloud-init');
  assert.is(sbomCloudInit?.versionInfo, cloudInit.version, 'the SBOM lists cloud-init with the manifest\'s version');
  assert.match(sbomCloudInit.externalRefs[0].referenceLocator, /^pkg:deb\/debian\/cloud-init@/);
  assert.equal(sbom.packages[0].checksums, [{ algorithm: 'SHA256', checksumValue: manifest.outputs[0].sha256 }]);
  assert.is(sbom.packages.length, manifest.packages.length + 1);
  const provenance = JSON.parse(await readFile(join(out, 'debian-13-hpc.provenance.json'), 'utf8'));
  assert.is(provenance.predicateType, 'https://slsa.dev/provenance/v1');
  assert.ok(provenance.subject.some((s: { name: string; digest: { sha256: string } }) => s.name === 'debian-13-hpc.qcow2' && s.digest.sha256 === manifest.outputs[0].sha256));
  assert.ok(provenance.predicate.buildDefinition.resolvedDependencies.some((d: { name: string }) => d.name === 'base'));
  assert.match(await readFile(join(out, 'SHA256SUMS'), 'utf8'), /  debian-13-hpc\.spdx\.json\n[\s\S]*  debian-13-hpc\.provenance\.json|  debian-13-hpc\.provenance\.json\n[\s\S]*  debian-13-hpc\.spdx\.json/);
  for (const x of manifest.verify) assert.is(x.verdict, x.id.startsWith('vrdma.') ? 'skip' : 'pass', `${x.id}: ${x.evidence}`);
  // Where the smoke boot's time went, as the guest measured it.
  const boot = manifest.smoke.boot;
  assert.equal(boot.cloudInit.map((c: { stage: string }) => c.stage), ['init-local', 'init', 'modules-config', 'modules-final']);
  assert.ok(boot.units.length >= 5 && boot.units.some((u: { unit: string }) => u.unit === 'cloud-init-local.service'), JSON.stringify(boot.units));
  assert.ok(boot.kernelMs > 0 && boot.userspaceMs > boot.kernelMs && boot.beforeKernelMs > 0, JSON.stringify(boot));
  // GRUB's own lines split the time before the kernel; the boot's plot is kept beside the console log.
  // (Both of Debian GRUB's lines seen on the real console, in order, before the kernel's clock started.)
  const before = boot.beforeKernel ?? {};
  assert.ok(before.firmwareMs > 0 && typeof before.kernelReadMs === 'number' && before.initrdReadMs > 0, JSON.stringify(boot));
  assert.match(await readFile(join(out, 'logs', 'debian-13-hpc', 'smoke-boot.svg'), 'utf8'), /cloud-init-main\.service/);
  // The critical chain to cloud-config: itself first, then what it waited for, cloud-init's network stage among them.
  const chain = boot.chain.map((c: { unit: string }) => c.unit);
  assert.is(chain[0], 'cloud-config.service', JSON.stringify(boot.chain));
  // cloud-init 24.3+ (trixie) calls its network stage cloud-init-network.service (was cloud-init.service).
  assert.ok(chain.includes('cloud-init-network.service') && chain.length >= 4, JSON.stringify(boot.chain));
  // Debian 13's ROCm runtime stays out (trim ucx-no-rocm): the stub stands in, the SBOM says so.
  assert.equal(manifest.packages.filter((p: { name: string }) => rocmPackage.test(p.name)).map((p: { name: string }) => p.name), []);
  assert.ok(manifest.packages.some((p: { name: string }) => p.name === 'libucx0'), 'UCX itself is there (Open MPI 5 needs it)');
  const stub = sbom.packages.find((p: { name: string }) => p.name === 'guestforge-no-rocm');
  assert.match(stub?.comment ?? '', /in place of libamdhip64-5, libhsa-runtime64-1/);
  assert.not.match(r.all, /degraded|DEPRECAT/i, 'no cloud-init deprecation or degraded run anywhere in the build');
  const sums = await readFile(join(out, 'SHA256SUMS'), 'utf8');
  const check = await run(['sha256sum', '-c', 'SHA256SUMS'], { cwd: out, allowFailure: true });
  assert.is(check.exitCode, 0, `${sums}\n${check.stdout}${check.stderr}`);
  const info = JSON.parse((await run(['qemu-img', 'info', '--output=json', image])).stdout);
  assert.is(info.format, 'qcow2');
  assert.not.ok(info['backing-filename'], 'the output must be standalone');
  const xml = await readFile(junit, 'utf8');
  assert.match(xml, /name="cloud-init.nocloud"/);
  assert.match(xml, /name="units.failed"/, 'the smoke boot checks that no unit failed');
  assert.match(xml, /name="layout.workspace-writable"/);
  assert.match(xml, /failures="0"/);
  assert.match(xml, /classname="guestforge\.smoke\.uefi-secure" name="firmware\.secure-boot"/);
  assert.ok(existsSync(join(out, 'logs', 'debian-13-hpc', 'smoke-console-uefi-secure.log')));
  assert.equal(await qemuUsing(out), []);
  assert.equal(await workLeft(), []);
  // Logs (user-data, console) and cache entries are the owner's only; the image and its manifest are meant to be shared.
  const stagesDir = join(cache, 'guestforge', 'stages');
  // allowFailure: the other lane's cache hits rename record files in stages/ while find walks it.
  const readable = (await run(['find', join(out, 'logs'), stagesDir, '-type', 'f', '-perm', '/o+r'], { allowFailure: true })).stdout.split('\n').filter(Boolean);
  assert.equal(readable, [], 'readable by others');
  // The build VM's user-data is kept when the build VM ran (always from an empty cache, as in CI).
  if (/provision: not cached/.test(r.all)) {
    const userData = await readFile(join(out, 'logs', 'debian-13-hpc', 'build-user-data.yaml'), 'utf8');
    assert.match(userData, /^#cloud-config/);
  }
});

e2e('Secure Boot refuses the image with its kernel replaced by an unsigned one (its signature cut off): GRUB asks shim, and nothing of Linux runs', async () => {
  const dir = join(tmp, 'unsigned');
  await mkdir(dir, { recursive: true });
  const overlay = join(dir, 'tampered.qcow2');
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', join(out, 'debian-13-hpc.qcow2'), '-F', 'qcow2', overlay]);
  // One guestfish launch: the kernel out, its Authenticode signature cut off as sbattach --remove does, back in.
  const session = await GuestSession.open([{ path: overlay, format: 'qcow2' }], { accel: 'tcg', smp: 2 });
  let unsigned: Buffer;
  try {
    await session.call('mount', '/dev/sda1', '/');
    const kernel = (await session.lines('glob-expand', '/boot/vmlinuz-*'))[0]!;
    await session.call('download', kernel, join(dir, 'vmlinuz'));
    const signed = await readFile(join(dir, 'vmlinuz'));
    assert.is(peFacts(new Uint8Array(signed.subarray(0, 4096))).signed, true, 'Debian\'s kernel comes signed');
    unsigned = unsignPe(signed);
    await writeFile(join(dir, 'vmlinuz'), unsigned);
    await session.call('upload', join(dir, 'vmlinuz'), kernel);
  } finally {
    await session.close();
  }
  assert.is(peFacts(new Uint8Array(unsigned.subarray(0, 4096))).signed, false);
  const serial = join(dir, 'console.log');
  const vm = await startQemu({
    disk: overlay, diskFormat: 'qcow2', memoryMiB: 1024, cpus: 2, accel: 'tcg', serialLog: serial, qmpSocket: join(dir, 'qmp.sock'),
    unsafeCache: true, isolated: true, uefi: (await prepareFirmware('uefi-secure', join(dir, 'vars.fd')))!,
  }, 'unsigned-kernel VM');
  const text = () => readFile(serial, 'latin1').catch(() => '');
  try {
    // GRUB gives up after the initrd too, then waits for a key: the refusal is on the console within seconds of the menu.
    await waitUntil(async () => /you need to load the kernel first/.test(await text()), { alive: async () => !(await vm.stopped()), ceilingMs: 5 * 60_000, everyMs: 1000 });
  } finally {
    await vm.stop();
  }
  const console = await text();
  assert.match(console, /Loading Linux [^\n]*\n[\s\S]*error: bad shim signature/, console.slice(-2000));
  assert.match(console, /error: you need to load the kernel first/);
  assert.not.match(console, /GUESTFORGE-|cloud-init|login:/, 'nothing of the guest ran');
});

/** `plan --json`'s cache lines for a profile: what the next build would take from the stage cache. */
async function cachePlan(profile: string, ...options: string[]): Promise<{ stage: string; cache: string; why: string; entry?: string }[]> {
  const r = await guestforge(['plan', '--json', profile, ...options], { timeoutMs: 120_000 });
  assert.is(r.exitCode, 0, r.all);
  return JSON.parse(r.stdout).cache;
}


e2e('stage cache: after the build, plan shows base, provision, seal and inject as hits; the provision entry keeps no user-data', async () => {
  const lines = await cachePlan(join(root, 'profiles', 'debian-13-hpc.yaml'));
  assert.equal(lines.map((l) => `${l.stage}:${l.cache}`), ['base:hit', 'provision:hit', 'seal:hit', 'inject:hit', 'verify:runs', 'finalize:runs', 'smoke:runs']);
  // The build VM dropped its instance data before powering off: the cache holds the disk, not what the seed said.
  const provision = lines.find((l) => l.stage === 'provision')!.entry!;
  const r = await run(['guestfish', '--ro', '-a', provision, '-i', 'glob-expand', '/var/lib/cloud/instances/*/*'], { env: { LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' }, timeoutMs: 5 * 60_000 });
  const left = r.stdout.split('\n').filter(Boolean);
  assert.ok(left.length > 0, 'the instance folder itself stays (boot-finished, sem/)');
  assert.equal(left.filter((p) => /\/(user-data\.txt|cloud-config\.txt|vendor-data\.txt|obj\.pkl|scripts)/.test(p)), [], left.join('\n'));
});

/** The app-change profile extends a shipped one from a folder of its own: the admin allows profiles/. */
const allowShipped = ['--allow-host-path', join(root, 'profiles')];

e2e('stage cache: changing only an app reruns inject onward, with no appliance (a fresh apps volume); base, provision and seal are hits; the build\'s verify passes every rule and sees the new app', async () => {
  const dir = join(tmp, 'app-change');
  await mkdir(dir, { recursive: true });
  const marker = `changed-app-${Date.now()}`;
  await writeFile(join(dir, 'run.sh'), `#!/bin/sh\necho ${marker}\n`);
  await writeFile(join(dir, 'p.yaml'), [
    `extends: ${join(root, 'profiles', 'debian-13-hpc.yaml')}`,
    // An uncompressed output: compressing a whole Debian disk proves nothing here and costs minutes under load.
    'disk: { compress: none }',
    'apps:', // appended to the parent's apps (lists append)
    `  - { src: run.sh, dest: /opt-vm/${marker}/run.sh, mode: "0755" }`,
  ].join('\n'));
  const before = await cachePlan(join(dir, 'p.yaml'), ...allowShipped);
  assert.equal(before.slice(0, 4).map((l) => `${l.stage}:${l.cache}`), ['base:hit', 'provision:hit', 'seal:hit', 'inject:miss']);
  assert.match(before[3]!.why, /changed: apps/);
  const r = await guestforge(['build', join(dir, 'p.yaml'), '-o', join(dir, 'out'), '--no-smoke', ...allowShipped]);
  assert.is(r.exitCode, 0, r.all);
  assert.match(r.all, /base: cache hit/);
  assert.match(r.all, /provision: cache hit/);
  assert.match(r.all, /seal: cache hit/);
  assert.match(r.all, /inject: not cached \(changed: apps\)/);
  assert.match(r.all, /inject: wrote the \d+ MiB apps volume at \/opt-vm \(5 apps, no appliance\) in [\d.]+ s/);
  assert.not.match(r.all, /go in with guestfish/);
  assert.not.ok(existsSync(join(dir, 'out', 'logs', 'debian-13-hpc', 'build-console.log')), 'no build VM ran');
  // The build's own verify verdicts (read from the work disk before finalize; the output file itself is
  // read back by guestfish in 'an independent guestfish read' below, and by outputs.test.ts's formats).
  const manifest = JSON.parse(await readFile(join(dir, 'out', 'debian-13-hpc.manifest.json'), 'utf8')) as { verify: { id: string; verdict: string; evidence: string }[] };
  for (const x of manifest.verify) assert.is(x.verdict, x.id.startsWith('vrdma.') ? 'skip' : 'pass', `${x.id}: ${x.evidence}`);
  assert.match(manifest.verify.find((x) => x.id === 'layout.opt-vm')?.evidence ?? '', new RegExp(`^/opt-vm: (.*, )?${marker}(, |$)`));
});

e2e('stage cache: a truncated entry is found broken by one of two builds started together, which removes and rebuilds it; the other waits for it and uses it', async () => {
  // The seal entry: a guestfish launch (~40 s), long enough for the second build to find it locked (inject
  // writes the apps volume in a second). The default profile's chain shares it; only this file
  // builds that profile, and the files of the other lane read their own entries.
  const profile = join(tmp, 'app-change', 'p.yaml');
  const entry = (await cachePlan(profile, ...allowShipped)).find((l) => l.stage === 'seal')?.entry;
  assert.ok(entry, 'the seal entry should be cached');
  await truncate(entry!, Math.floor((await stat(entry!)).size / 2));
  const dir = join(tmp, 'corrupt');
  const [a, b] = await Promise.all(['a', 'b'].map((x) => guestforge(['build', profile, '-o', join(dir, x), '--no-smoke', ...allowShipped])));
  assert.is(a!.exitCode, 0, a!.all);
  assert.is(b!.exitCode, 0, b!.all);
  const both = `${a!.all}\n${b!.all}`;
  assert.is(both.match(/seal: not cached \(the cached entry was broken \(its disk is \d+ bytes, the record says \d+\) and was removed\)/g)?.length, 1, both);
  assert.is(both.match(/seal: not cached/g)?.length, 1, both);
  assert.is(both.match(/seal: cache hit/g)?.length, 1, both);
  assert.match(both, /seal: waiting for pid \d+ \(building debian-13-hpc\)/);
  assert.is(both.match(/provision: cache hit/g)?.length, 2, both);
  for (const x of ['a', 'b']) assert.ok(existsSync(join(dir, x, 'debian-13-hpc.qcow2')));
  const after = await cachePlan(profile, ...allowShipped);
  assert.is(after.find((l) => l.stage === 'seal')?.cache, 'hit', 'rebuilt and cached again');
  assert.is(after.find((l) => l.stage === 'inject')?.cache, 'hit', 'the apps written again on the new seal entry, and cached');
  const check = await run(['qemu-img', 'check', entry!], { allowFailure: true });
  assert.is(check.exitCode, 0, check.stderr);
  assert.equal(await workLeft(), []);
});

e2e('--break before:inject keeps the build; guestforge shell changes its disk; resume runs inject onward from it, caches nothing, and its verify passes the image with the app and the change', async () => {
  const profile = join(tmp, 'app-change', 'p.yaml');
  const bOut = join(tmp, 'break-out');
  const b = await guestforge(['build', profile, '-o', bOut, '--no-smoke', '--break', 'before:inject', ...allowShipped]);
  assert.is(b.exitCode, 0, b.all);
  assert.match(b.all, /provision: cache hit/);
  const id = /stopped before inject, as --break asked; kept as (debian-13-hpc-[0-9a-f]{12}):/.exec(b.all)?.[1];
  assert.ok(id, b.all);
  assert.match(b.all, new RegExp(`disk: +guestforge shell ${id}`));
  // kept.json holds no output folder nor allowed host folder: the resume line repeats build's own flags.
  assert.ok(b.all.includes(`resume:   guestforge resume ${id} -o ${bOut} --no-smoke --allow-host-path `), b.all);
  assert.not.ok(existsSync(join(bOut, 'debian-13-hpc.qcow2')));
  // guestfish reads commands from stdin when it is not a terminal, as it does on one.
  const sh = await execa('node', [cli, 'shell', id!], { env, reject: false, all: true, timeout: 5 * 60_000, input: 'is-dir /opt-vm\nls /opt-vm\necho ==\nmkdir /opt-vm/from-shell\nls /opt-vm\n' });
  assert.is(sh.exitCode, 0, sh.all);
  assert.match(sh.stderr, /read-write \(resume goes on from what you leave here\)/);
  const [before, after] = sh.stdout.split('==\n');
  // lost+found: the apps folder is the apps volume, a filesystem of its own.
  assert.is(before, 'true\nlost+found\n', 'the app folder is there, empty, before inject');
  assert.is(after?.trim(), 'from-shell\nlost+found');
  // kept.json holds neither -o nor --allow-host-path: resume is given them again, as build was.
  const r = await guestforge(['resume', id!, '-o', bOut, '--no-smoke', ...allowShipped]);
  assert.is(r.exitCode, 0, r.all);
  assert.match(r.all, new RegExp(`resuming ${id} at inject`));
  // The shell may have changed the volume: a fresh one would drop what it left.
  assert.match(r.all, /inject: the disk may have changed since its facts were read \(a resumed build\), so the apps go in with guestfish/);
  assert.not.match(r.all, /cached as|cache hit/);
  // The resumed build's own verify stage read the disk inject wrote (the facts of its own launch); its
  // verdicts are in the manifest. guestforge verify on a built image runs the same reading and rules
  // (verify.test.ts and layouts.test.ts run the command itself), so no launch more here.
  const manifest = JSON.parse(await readFile(join(bOut, 'debian-13-hpc.manifest.json'), 'utf8')) as { verify: { id: string; verdict: string; evidence: string }[] };
  // The profile is known here: only vRDMA's rules, which it does not ask for, are skipped.
  for (const x of manifest.verify) assert.is(x.verdict, x.id.startsWith('vrdma.') ? 'skip' : 'pass', `${x.id}: ${x.evidence}`);
  const optVm = manifest.verify.find((x) => x.id === 'layout.opt-vm')?.evidence ?? '';
  assert.match(optVm, /from-shell/);
  assert.match(optVm, /changed-app-\d+/);
  assert.equal(await workLeft(), []);
});

e2e('cache ls lists the entries with their profile; prune --dry-run removes nothing', async () => {
  const ls = await guestforge(['cache', 'ls'], { timeoutMs: 60_000 });
  assert.is(ls.exitCode, 0, ls.all);
  assert.match(ls.stdout, /^STAGE\s+KEY\s+SIZE\s+LAST USED\s+PROFILE\s+PARENT$/m);
  assert.match(ls.stdout, /^provision\s+[0-9a-f]{16}\s+.*debian-13-hpc\s+base-[0-9a-f]{16}$/m);
  // Other test files may add entries meanwhile: every entry seen before the dry run must still be there after it.
  const entries = async () => (await guestforge(['cache', 'ls', '--json'], { timeoutMs: 60_000 }).then((r) => JSON.parse(r.stdout) as { stage: string; key: string }[])).map((e) => `${e.stage}-${e.key}`);
  const before = await entries();
  assert.ok(before.length >= 3, before.join(' '));
  const dry = await guestforge(['cache', 'prune', '--dry-run'], { timeoutMs: 60_000 });
  assert.is(dry.exitCode, 0, dry.all);
  assert.match(dry.stdout, /would remove \d+ entries/);
  const after = await entries();
  assert.equal(before.filter((e) => !after.includes(e)), [], 'prune --dry-run removed entries');
  const bad = await guestforge(['cache', 'prune', '--older-than', 'soon'], { timeoutMs: 60_000 });
  assert.is(bad.exitCode, 2, bad.all);
});

e2e('an independent guestfish read of the output shows the cluster layout and a clean guest (no debug key)', async () => {
  const image = join(out, 'debian-13-hpc.qcow2');
  const commands = [
    'is-dir /workspace',
    'stat /workspace',
    'ls /opt',
    'is-file /opt-vm/hello-mpi/bin/run.sh',
    'stat /opt-vm/hello-mpi/bin/run.sh',
    'cat /etc/cloud/cloud.cfg.d/90_guestforge_datasource.cfg',
    'filesize /etc/machine-id',
    'glob-expand /etc/ssh/ssh_host_*',
    '-cat /root/.ssh/authorized_keys',
    'exists /var/lib/cloud/instances',
    'cat /etc/guestforge-release',
    'mountpoints',
  ];
  // One launch; each answer framed by a marker line so they can be told apart.
  const r = await run(['guestfish', '--ro', '-a', image, '-i'], {
    input: `${commands.map((c) => `${c}\necho ==END==`).join('\n')}\n`,
    env: { LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' },
    timeoutMs: 5 * 60_000,
  });
  const answers = r.stdout.split('==END==\n');
  const answer = (command: string) => answers[commands.indexOf(command)] ?? '';
  assert.is(answer('is-dir /workspace'), 'true\n');
  assert.match(answer('stat /workspace'), /^mode: 17407$/m, '/workspace is 1777 (17407 = directory bit + 01777)');
  assert.is(answer('ls /opt'), '', '/opt must be empty');
  assert.is(answer('is-file /opt-vm/hello-mpi/bin/run.sh'), 'true\n');
  assert.match(answer('stat /opt-vm/hello-mpi/bin/run.sh'), /^mode: 33261$/m, 'run.sh is 0755');
  assert.match(answer('cat /etc/cloud/cloud.cfg.d/90_guestforge_datasource.cfg'), /datasource_list: \[ NoCloud, None \]/);
  assert.is(answer('filesize /etc/machine-id'), '0\n', 'machine-id is empty');
  assert.is(answer('glob-expand /etc/ssh/ssh_host_*'), '', 'no SSH host keys');
  // The build VM's debug key (--debug-ssh-key) is used only when the build VM fails.
  assert.not.match(answer('-cat /root/.ssh/authorized_keys'), /guestforge-e2e-debug/);
  assert.is(answer('exists /var/lib/cloud/instances'), 'false\n', 'no cloud-init instance state');
  assert.match(answer('cat /etc/guestforge-release'), /built by guestforge/);
  // The apps folder is a filesystem of its own, mounted by the image's fstab.
  assert.match(answer('mountpoints'), /^\/dev\/sd[a-z]2: \/opt-vm$/m);
});

e2e('a failing profile command with --on-error keep: exit 1 naming the command; the build VM stays up; console shows its login prompt and takes the one-time password; SSH takes the debug key; discard leaves no qemu and no work folder', async () => {
  const failOut = join(tmp, 'fail-out');
  const r = await guestforge(['build', join(root, 'test', 'fixtures', 'profiles', 'fail-command.yaml'), '-o', failOut, '--on-error', 'keep', '--debug-ssh-key', `${debugKey}.pub`]);
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.all, /command 2: false failed \(exit 1\)/);
  assert.match(r.all, /last console lines/);
  const id = /the build is kept as (fail-command-[0-9a-f]{12}) with its build VM running:/.exec(r.all)?.[1];
  assert.ok(id, r.all);
  const password = /one-time password (\S+);/.exec(r.all)?.[1];
  assert.ok(password, r.all);
  assert.not.ok(existsSync(join(failOut, 'fail-command.qcow2')));
  assert.is((await qemuUsing(failOut)).length, 1, 'the build VM still runs');
  const listed = JSON.parse((await guestforge(['builds', '--json'])).stdout) as { id: string; vmRunning: boolean; sshPort?: number; stage: string }[];
  const mine = listed.find((b) => b.id === id);
  assert.equal([mine?.stage, mine?.vmRunning], ['provision', true]);
  const c = await onPty(['node', cli, 'console', id!], [
    { expect: /login: *$/, send: 'root\r' },
    { expect: /Password: *$/, send: `${password}\r` },
    { expect: /# *$/, send: 'cat /run/guestforge/failed; echo "done-$((6*7))"\r' },
    { expect: /done-42/, send: '\x1d' },
  ], { env });
  assert.is(c.exitCode, 0, c.output);
  assert.match(c.output, /login:/);
  assert.match(c.output, /command 2: false failed \(exit 1\)/, c.output);
  assert.match(c.output, /detached; the VM still runs/);
  const ssh = await run(['ssh', '-i', debugKey, '-p', String(mine!.sshPort), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=30',
    'root@127.0.0.1', 'cat /run/guestforge/failed'], { allowFailure: true, timeoutMs: 120_000 });
  assert.is(ssh.exitCode, 0, ssh.stderr);
  assert.match(ssh.stdout, /command 2: false failed/);
  const d = await guestforge(['discard', id!]);
  assert.is(d.exitCode, 0, d.all);
  assert.match(d.stdout, /its VM stopped/);
  assert.equal(await qemuUsing(failOut), []);
  assert.equal(await workLeft(), []);
});

e2e('a timeout of a few seconds: exit 1 saying "timed out", no qemu left', async () => {
  const tOut = join(tmp, 'timeout-out');
  const r = await guestforge(['build', join(root, 'test', 'fixtures', 'profiles', 'timeout.yaml'), '-o', tOut]);
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.all, /timed out/);
  assert.not.ok(existsSync(join(tOut, 'timeout.qcow2')));
  assert.equal(await qemuUsing(tOut), []);
  assert.equal(await workLeft(), []);
});

e2e('SIGINT while a build VM that --on-error keep would keep runs: keep is for failures, so exit 130, qemu gone, no output, no work folder', async () => {
  const sOut = join(tmp, 'signal-out');
  const child = guestforge(['build', join(root, 'test', 'fixtures', 'profiles', 'fail-command.yaml'), '-o', sOut, '--on-error', 'keep']);
  const consoleLog = join(sOut, 'logs', 'fail-command', 'build-console.log');
  await waitUntil(() => existsSync(consoleLog), { alive: () => running(child), ceilingMs: 20 * 60_000 });
  assert.ok(existsSync(consoleLog), 'the build VM never started');
  await new Promise((r) => setTimeout(r, 2000));
  assert.ok((await qemuUsing(sOut)).length > 0, 'qemu should be running before the signal');
  child.kill('SIGINT');
  const r = await child;
  assert.is(r.exitCode, 130, r.all);
  assert.match(r.all, /interrupted by SIGINT/);
  assert.equal(await qemuUsing(sOut), []);
  assert.not.ok(existsSync(join(sOut, 'fail-command.qcow2')));
  assert.equal(await workLeft(), []);
});

e2e.after(async () => {
  // A test that failed half-way may have left a kept build (and its VM): not for the next run.
  const kept = JSON.parse((await guestforge(['builds', '--json'], { timeoutMs: 60_000 })).stdout || '[]') as { id: string }[];
  for (const b of kept.filter((k) => /^(debian-13-hpc|fail-command)-/.test(k.id))) await guestforge(['discard', b.id], { timeoutMs: 60_000 });
  await rm(tmp, { recursive: true, force: true });
});

failures.run();
e2e.run();
