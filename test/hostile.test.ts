/**
 * Hostile profiles and images (issue 16): each case is refused at validate
 * with file:line:col and the field, or ends in a safe result proven by
 * reading the disk afterwards. One guestfish launch, on a small ext4 image.
 */
import { rejects } from './helpers/rejects.ts';
import { chmod, mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { GuestSession } from '../src/guestfs/session.ts';
import { appTar } from '../src/stages/apps-volume.ts';
import { injectApp } from '../src/stages/inject.ts';
import { writePackage } from '../src/os/osv/package.ts';
import { loadProfileOrThrow } from '../src/loader/index.ts';
import { loadProfile } from '../src/loader/profile.ts';
import { formatDiagnostic } from '../src/profile/diagnostic.ts';
import { builderName, resolveBuilder } from '../src/os/osv/builder.ts';
import type { BuildContext } from '../src/stages/types.ts';
import { existsSync } from 'node:fs';
import { startFailureHint } from '../src/vm/libvirt.ts';
import { libvirtUriProblem } from '../src/vm/uri.ts';
import { acquireLock } from '../src/exec/lock.ts';
import { UsageError } from '../src/errors.ts';
import { mountGuest } from '../src/verify/mount.ts';
import { checkedBackingChain } from '../src/vm/image.ts';
import { sha256File } from '../src/util/fs.ts';
import { makeImage } from './helpers/tree-image.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const tmp = await mkdtemp(join(tmpdir(), 'gf-hostile-'));
const base = await readFile(join(root, 'profiles', 'debian-12-hpc.yaml'), 'utf8');

/** The default profile with `edit` applied, in the profiles folder (its apps resolve from there). */
async function profileWith(edit: (text: string) => string): Promise<string> {
  const file = join(root, 'profiles', `.test-hostile-${process.pid}-${Math.random().toString(16).slice(2)}.yaml`);
  await writeFile(file, edit(base));
  return file;
}

async function validate(file: string, ...options: string[]) {
  try {
    return await execa('node', [cli, 'validate', file, ...options], { reject: false });
  } finally {
    await rm(file, { force: true });
  }
}

/** The 1-based line of the first line of `text` that contains `needle`. */
function lineOf(text: string, needle: string): number {
  return text.split('\n').findIndex((l) => l.includes(needle)) + 1;
}

const profiles = suite('hostile profiles: exit 2 at validate, located');

/** Add lines to the profile's layout mapping. */
const layoutWith = (lines: string) => (t: string) => t.replace('layout:\n', `layout:\n${lines}`);
const appDest = (dest: string) => (t: string) => t.replace('dest: /opt-vm/hello-mpi/README', `dest: ${JSON.stringify(dest)}`);
for (const [name, edit, field, message] of [
  ['app dest /etc (with a mode)', appDest('/etc'), 'apps[1].dest', /outside the apps folder \/opt-vm/],
  ['app dest with a quote and a command', appDest("/opt-vm/x'; touch /INJECTED; echo '"), 'apps[1].dest', /expected an absolute guest path/],
  ['app dest through ..', appDest('/opt-vm/../etc/cron.d/x'), 'apps[1].dest', /no "\/\/", "\." or "\.\." segments/],
  ['app dest the apps folder itself', appDest('/opt-vm'), 'apps[1].dest', /the apps folder itself/],
  ['two apps at one dest', appDest('/opt-vm/hello-mpi/bin/run.sh'), 'apps[1].dest', /is also the dest of apps\[0\]/],
  ['layout.optVm /etc', (t: string) => layoutWith('  appRoots: []\n')(t).replace('optVm: /opt-vm', 'optVm: /etc'), 'layout.optVm', /\/etc is a system or shared folder/],
  ['layout.workspace /tmp (its mode is set)', (t: string) => t.replace('workspace: /workspace', 'workspace: /tmp'), 'layout.workspace', /system or shared folder/],
  ['layout.workspace with $(...)', (t: string) => t.replace('workspace: /workspace', 'workspace: "/w$(reboot)"'), 'layout.workspace', /expected an absolute guest path/],
  ['layout.appRoots /usr', layoutWith('  appRoots: [/usr]\n'), 'layout.appRoots[0]', /system or shared folder/],
  ['libvirt URI that runs a program', (t: string) => `${t}build:\n  backend: libvirt\n  connect: "qemu+ext:///system?command=/tmp/evil.sh"\n`, 'build.connect', /transport qemu\+ext is not one guestforge uses/],
  ['libvirt URI with command=', (t: string) => `${t}build:\n  backend: libvirt\n  connect: "qemu+ssh://h/system?command=/tmp/evil.sh"\n`, 'build.connect', /URI parameter command is not accepted/],
  ['root with a password hash', (t: string) => t.replace('  - name: hpc\n', '  - name: root\n    passwordHash: "$6$salt$abc"\n  - name: hpc\n'), 'users[0].passwordHash', /root gets no password/],
  ['plaintext chpasswd in extra user-data', (t: string) => `${t}cloudInit:\n  userData:\n    chpasswd:\n      list: "root:hunter2"\n`, 'cloudInit.userData', /plaintext or root passwords in the extra user-data: chpasswd\.list/],
] as const) {
  profiles(name, async () => {
    const file = await profileWith(edit);
    const text = await readFile(file, 'utf8');
    const r = await validate(file);
    assert.is(r.exitCode, 2, r.stderr);
    // The line of the value: a mapping value starts on its first key.
    const needle = field.startsWith('apps') ? 'dest: "' : field.startsWith('users') ? 'passwordHash:' : field === 'cloudInit.userData' ? 'chpasswd:' : `${field.split('.')[1]!.replace(/\[0\]$/, '')}:`;
    const line = lineOf(text, needle);
    assert.match(r.stderr, new RegExp(`:${line}:\\d+ ${field.replace(/[.[\]]/g, '\\$&')}: `), `${r.stderr}\nwant line ${line}`);
    assert.match(r.stderr, message);
  });
}

profiles('files that are not profiles: alias bomb, huge, FIFO, device, not UTF-8 → exit 2 naming the file, quickly', async () => {
  const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`)].join('\n');
  const cases: [string, () => Promise<string>, RegExp][] = [
    ['alias bomb', async () => { const f = join(tmp, 'bomb.yaml'); await writeFile(f, `${bomb}\n`); return f; }, /bomb\.yaml:1:1 .*YAML: .*alias/i],
    ['2 MB', async () => { const f = join(tmp, 'huge.yaml'); await writeFile(f, `name: x\n#${'y'.repeat(2 * 1024 * 1024)}\n`); return f; }, /huge\.yaml:1:1 .*larger than 1024 KiB/],
    ['FIFO', async () => { const f = join(tmp, 'fifo.yaml'); await execa('mkfifo', [f]); return f; }, /fifo\.yaml:1:1 .*not a regular file \(a FIFO\)/],
    ['/dev/zero', async () => '/dev/zero', /not a regular file \(a device or socket\)/],
    ['Latin-1', async () => { const f = join(tmp, 'latin1.yaml'); await writeFile(f, Buffer.from('name: caf\xe9\n', 'latin1')); return f; }, /latin1\.yaml:1:1 .*not UTF-8 text/],
  ];
  for (const [name, make, want] of cases) {
    const t0 = Date.now();
    const r = await execa('node', [cli, 'validate', await make()], { reject: false, timeout: 30_000 });
    assert.is(r.exitCode, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, want, name);
    assert.ok(Date.now() - t0 < 10_000, `${name} took ${Date.now() - t0} ms`);
  }
});

profiles('extends: 42, a suite that is an option, a 200-character name, an app src that is a device (in a folder the admin allowed)', async () => {
  const cases: [(t: string) => string, RegExp, string[]?][] = [
    [(t) => `extends: 42\n${t}`, /:1:\d+ extends: extends takes a profile file path, not 42/],
    [(t) => t.replace('suite: bookworm', 'suite: "--setup-hook=touch /tmp/pwned"'), /base\.bootstrap\.suite: expected a suite name/],
    [(t) => t.replace('name: debian-12-hpc', `name: ${'a'.repeat(200)}`), /name: expected a name .*at most 64 characters/],
    [(t) => t.replace('name: debian-12-hpc', 'name: logs'), /would clash with the output folder/],
    [(t) => t.replace('src: apps/hello-mpi/run.sh', 'src: /dev/zero'), /apps\[0\]\.src: \/dev\/zero is not a file or folder/, ['--allow-host-path', '/dev']],
    // Inside an app folder too: they would reach the apps volume (issue 32).
    [(t) => t.replace('src: apps/hello-mpi/run.sh', `src: ${join(tmp, 'app-fifo')}`), /apps\[0\]\.src: .*app-fifo\/deep\/pipe is a FIFO/, ['--allow-host-path', tmp]],
    [(t) => t.replace('src: apps/hello-mpi/run.sh', `src: ${join(tmp, 'app-dev')}`), /apps\[0\]\.src: .*app-dev\/disk is a device node/, ['--allow-host-path', tmp]],
  ];
  await mkdir(join(tmp, 'app-fifo', 'deep'), { recursive: true });
  await execa('mkfifo', [join(tmp, 'app-fifo', 'deep', 'pipe')]);
  await mkdir(join(tmp, 'app-dev'), { recursive: true });
  await execa('mknod', [join(tmp, 'app-dev', 'disk'), 'b', '7', '0']);
  for (const [edit, want, options = []] of cases) {
    const r = await validate(await profileWith(edit), ...options);
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, want);
  }
});

profiles('-o naming a file, and a password in base.image.url: a clear error, no secret shown', async () => {
  const file = join(tmp, 'a-file');
  await writeFile(file, 'not a folder\n');
  const r = await execa('node', [cli, 'build', join(root, 'profiles', 'debian-12-hpc.yaml'), '-o', file], { reject: false, env: { XDG_CACHE_HOME: join(tmp, 'xdg') } });
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /-o .*a-file: exists and is not a folder/);
  const rocky = await readFile(join(root, 'profiles', 'rocky-9-hpc.yaml'), 'utf8');
  const withCreds = join(root, 'profiles', `.test-hostile-url-${process.pid}.yaml`);
  await writeFile(withCreds, rocky.replace(/url: https:\/\/([^\s]+)/, 'url: https://me:hunter2@$1?token=s3cr3t'));
  try {
    const plan = await execa('node', [cli, 'plan', withCreds], { reject: false, env: { XDG_CACHE_HOME: join(tmp, 'xdg') } });
    assert.is(plan.exitCode, 0, plan.stderr);
    assert.match(plan.stdout, /https:\/\/<redacted>@/);
    assert.not.ok(/hunter2|s3cr3t/.test(plan.stdout + plan.stderr));
  } finally {
    await rm(withCreds, { force: true });
  }
});

profiles('a libvirt start failing on the virtlogd socket names virtlogd', () => {
  assert.match(startFailureHint("error: Failed to connect socket to '/run/libvirt/virtlogd-sock': No such file or directory", 'qemu:///system'), /virtlogd is not running/);
  assert.match(startFailureHint('error: something else', 'qemu:///system'), /libvirtd -d/);
});

profiles('--connect with a program-running URI stops before virsh runs', async () => {
  const r = await execa('node', [cli, 'build', join(root, 'profiles', 'debian-12-hpc.yaml'), '--backend', 'libvirt', '--connect', 'qemu+ext://x/system?command=/tmp/evil.sh', '-o', join(tmp, 'never')], { reject: false });
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /libvirt URI refused: transport qemu\+ext/);
});

profiles('an app outside /opt-vm is fine when its root is listed in layout.appRoots', async () => {
  const file = await profileWith((t) => layoutWith('  appRoots: [/srv/tools]\n')(appDest('/srv/tools')(t)));
  const strict = await validate(file);
  assert.is(strict.exitCode, 2, 'the root itself is not a path of its own');
  const ok = await profileWith((t) => layoutWith('  appRoots: [/srv/tools]\n')(appDest('/srv/tools/readme/README')(t)));
  const r = await validate(ok);
  assert.is(r.exitCode, 0, r.stderr);
});
profiles('what were internal errors (exit 1, "please report it") are exit 2 naming the input: a bad %-escape in a URI, a linked lock file, a vmdk whose extent is missing', async () => {
  assert.match(libvirtUriProblem('qemu:///system?%ZZ=1') ?? 'accepted', /"%ZZ" is not valid percent-encoding/);
  const uri = await execa('node', [cli, 'build', join(root, 'profiles', 'debian-12-hpc.yaml'), '--connect', 'qemu:///system?%ZZ=1', '-o', join(tmp, 'uri-out')], { reject: false, timeout: 60_000 });
  assert.is(uri.exitCode, 2, uri.stderr);
  assert.not.match(uri.stderr, /please report it/);

  const lockDir = join(tmp, 'share-name');
  await mkdir(lockDir, { recursive: true });
  await symlink('/etc/passwd', join(lockDir, '.publish.lock'));
  const locked = await acquireLock(join(lockDir, '.publish.lock'), { profile: 'publish x' }).then(() => undefined, (e: unknown) => e);
  assert.instance(locked, UsageError);
  assert.match((locked as Error).message, /\.publish\.lock: the lock file is a symbolic link/);
  const fifoDir = join(tmp, 'share-fifo');
  await mkdir(fifoDir, { recursive: true });
  await execa('mkfifo', [join(fifoDir, '.publish.lock')]);
  const fifo = await acquireLock(join(fifoDir, '.publish.lock'), { profile: 'publish x' }).then(() => undefined, (e: unknown) => e);
  assert.instance(fifo, UsageError);
  assert.match((fifo as Error).message, /the lock file is not a regular file/);

  const vmdk = join(tmp, 'missing-extent.vmdk');
  await writeFile(vmdk, '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 2048 FLAT "nothere.raw" 0\n');
  const v = await execa('node', [cli, 'verify', vmdk], { reject: false, timeout: 60_000 });
  assert.is(v.exitCode, 2, v.stderr);
  assert.match(v.stderr, /missing-extent\.vmdk cannot be read as a disk image: .*nothere\.raw/);
});

profiles('a malformed vmdk descriptor (one that makes qemu-img abort, one it calls invalid) and a linked .publish.lock through publish: exit 2 naming the input, never "please report it"', async () => {
  const descriptor = (lines: string) => `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n${lines}`;
  // qemu-img 7 dies on an assertion (exit 134) reading this one; it is still the input's fault, said as such.
  const aborts = join(tmp, 'extent-size-not-a-number.vmdk');
  await writeFile(aborts, descriptor('createType="monolithicFlat"\nRW two FLAT "x.raw" 0\n'));
  const v = await execa('node', [cli, 'verify', aborts], { reject: false, timeout: 60_000 });
  assert.is(v.exitCode, 2, v.stderr);
  assert.match(v.stderr, /extent-size-not-a-number\.vmdk/);
  assert.not.match(v.stderr, /please report it/);
  const invalid = join(tmp, 'extent-line-junk.vmdk');
  await writeFile(invalid, descriptor('RW 2048 FLAT "x.raw" 0 extra junk\n'));
  const refused = await rejects(checkedBackingChain(invalid, 'verify'), /extent-line-junk\.vmdk cannot be read as a disk image: .*invalid VMDK image descriptor/);
  assert.instance(refused, UsageError);

  // A built image in out/, published into a share whose lock file is a link to a file that must not change.
  const out = join(tmp, 'pub-out');
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'tiny.raw'), 'not much of a disk\n');
  await writeFile(join(out, 'tiny.manifest.json'), JSON.stringify({ name: 'tiny', version: '1.0', builtAt: new Date().toISOString(), outputs: [{ file: 'tiny.raw', sha256: await sha256File(join(out, 'tiny.raw')) }] }));
  const share = join(tmp, 'pub-share');
  await mkdir(join(share, 'tiny'), { recursive: true });
  const victim = join(tmp, 'victim-file');
  await writeFile(victim, 'unchanged\n');
  await symlink(victim, join(share, 'tiny', '.publish.lock'));
  const p = await execa('node', [cli, 'publish', join(out, 'tiny.raw'), '--to', share], { reject: false, timeout: 60_000 });
  assert.is(p.exitCode, 2, p.stderr);
  assert.match(p.stderr, /\.publish\.lock: the lock file is a symbolic link/);
  assert.not.match(p.stderr, /please report it/);
  assert.is(await readFile(victim, 'utf8'), 'unchanged\n');
  assert.equal((await readdir(join(share, 'tiny'))).sort(), ['.publish.lock'], 'nothing published, no temp folder left');
});

profiles('extends naming a shadow-format file in an allowed folder: exit 2, and no line of that file in any message', async () => {
  const shadow = join(tmp, 'shadow-like');
  await writeFile(shadow, 'root:$6$saltsalt$HASHHASHHASH:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n');
  const r = await validate(await profileWith((t) => `extends: ${shadow}\n${t}`), '--allow-host-path', tmp);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /shadow-like:1:1 <a 47-character key, not shown>: unknown key/);
  assert.not.match(r.stderr, /HASH|\$6\$|daemon/);
});

profiles.run();

const hostFiles = suite('host files a profile names: only from its own folder (by real path), unless --allow-host-path');

/** The profile's folder, with an app beside the profile, links out of it, and files just outside it. */
const confined = join(tmp, 'confined');
await mkdir(confined);
await writeFile(join(confined, 'app.sh'), '#!/bin/sh\necho in the folder\n');
await symlink('app.sh', join(confined, 'inside-link'));
await symlink('/etc/shadow', join(confined, 'shadow-link'));
await symlink('/etc', join(confined, 'etc-link'));
// Shaped like a shadow file: no line of it may reach a message.
await writeFile(join(tmp, 'outside'), 'root:$6$saltsalt$HASHHASHHASH:19000:0:99999:7:::\n');
await writeFile(join(tmp, 'parent.yaml'), 'description: a parent profile outside the folder\n');
await writeFile(join(tmp, 'user-data.yaml'), '#cloud-config\npackage_update: false\n');
await execa('qemu-img', ['create', '-q', '-f', 'qcow2', join(tmp, 'base.qcow2'), '64M']);
await execa('qemu-img', ['create', '-q', '-f', 'qcow2', join(confined, 'base-in.qcow2'), '64M']);
await writeFile(join(tmp, 'builder.elf'), 'not a kernel\n');
const zeros = '0'.repeat(64);

const debianText = ['name: confined', 'os: { family: debian, release: "12" }', 'base:', '  bootstrap:', '    suite: bookworm', 'disk:', '  size: 4G', 'apps:', '  - src: app.sh', '    dest: /opt-vm/app/app.sh', ''].join('\n');
const withSrc = (src: string) => debianText.replace('src: app.sh', `src: ${src}`);
const osvText = ['name: confined-osv', 'os: { family: osv, runtime: native, cmdline: /app.sh }', 'base:', `  image: { path: base-in.qcow2, sha256: "${zeros}" }`, `  builder: { path: ../builder.elf, sha256: "${zeros}" }`, 'disk:', '  size: 128M', 'apps:', '  - src: app.sh', '    dest: /app.sh', ''].join('\n');

let written = 0;
async function confinedProfile(text: string): Promise<string> {
  const file = join(confined, `p${(written += 1)}.yaml`);
  await writeFile(file, text);
  return file;
}

/** file:line:col of the first occurrence of `value` in `text`, as a diagnostic starts. */
function located(file: string, text: string, value: string): string {
  const lines = text.split('\n');
  const line = lines.findIndex((l) => l.includes(value));
  return `${file.slice(file.lastIndexOf('/') + 1)}:${line + 1}:${lines[line]!.indexOf(value) + 1}`;
}

for (const [name, text, field, value, allow, validWhenAllowed] of [
  ['/etc/shadow', withSrc('/etc/shadow'), 'apps[0].src', '/etc/shadow', '/etc', true],
  ['/root', withSrc('/root'), 'apps[0].src', '/root', '/root', false],
  ['/proc/self/environ', withSrc('/proc/self/environ'), 'apps[0].src', '/proc/self/environ', '/proc', true],
  ['../outside', withSrc('../outside'), 'apps[0].src', '../outside', tmp, true],
  ['a link in the folder to /etc/shadow', withSrc('shadow-link'), 'apps[0].src', 'shadow-link', '/etc', true],
  ['a path through a link in the folder to /etc', withSrc('etc-link/passwd'), 'apps[0].src', 'etc-link/passwd', '/etc', true],
  ['extends of a profile outside', `extends: ../parent.yaml\n${debianText}`, 'extends', '../parent.yaml', tmp, true],
  ['cloudInit.userData outside', `${debianText}cloudInit:\n  userData: ../user-data.yaml\n`, 'cloudInit.userData', '../user-data.yaml', tmp, true],
  ['base.image.path outside', debianText.replace('  bootstrap:\n    suite: bookworm', `  image:\n    path: ../base.qcow2\n    sha256: "${zeros}"`), 'base.image.path', '../base.qcow2', tmp, true],
  ['base.builder.path (OSv) outside', osvText, 'base.builder.path', '../builder.elf', tmp, true],
] as const) {
  hostFiles(`${name}: refused, located, the hint naming --allow-host-path; accepted with --allow-host-path ${allow === tmp ? '<its folder>' : allow}`, async () => {
    const file = await confinedProfile(text);
    const refused = await loadProfile(file);
    assert.not.ok(refused.ok, `${name} was accepted`);
    const said = refused.ok ? '' : refused.diagnostics.map(formatDiagnostic).join('\n');
    assert.match(said, new RegExp(`${located(file, text, value).replace(/[.[\]/]/g, '\\$&')} ${field.replace(/[.[\]]/g, '\\$&')}: .* is outside ${confined.replace(/[.[\]/]/g, '\\$&')}, the folder of the profile that names it`), said);
    assert.match(said, /hint: .*--allow-host-path DIR/);
    assert.not.match(said, /HASH|\$6\$/);
    const allowed = await loadProfile(file, { allowHostPaths: [allow] });
    const after = allowed.ok ? '' : allowed.diagnostics.map(formatDiagnostic).join('\n');
    assert.not.match(after, /is outside/, after);
    if (validWhenAllowed) assert.ok(allowed.ok, after);
  });
}

hostFiles('links are resolved before the check: a link in the folder to an app in the folder is accepted, and the profile then holds the real path the build reads', async () => {
  const plain = await loadProfile(await confinedProfile(debianText));
  assert.ok(plain.ok, plain.ok ? '' : plain.diagnostics.map(formatDiagnostic).join('\n'));
  const linked = await loadProfile(await confinedProfile(withSrc('inside-link')));
  assert.ok(linked.ok, linked.ok ? '' : linked.diagnostics.map(formatDiagnostic).join('\n'));
  if (linked.ok) assert.is(linked.value.profile.apps[0]!.src, join(await realpath(confined), 'app.sh'));
  const escaping = await loadProfile(await confinedProfile(withSrc('shadow-link')));
  assert.match(escaping.ok ? '' : escaping.diagnostics.map(formatDiagnostic).join('\n'), /shadow-link \(really \/etc\/shadow\) is outside/);
});

hostFiles('an extends outside is not read: no line of it in any message', async () => {
  const text = `extends: ../outside\n${debianText}`;
  const file = await confinedProfile(text);
  const r = await execa('node', [cli, 'validate', file], { reject: false });
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`${located(file, text, '../outside').replace(/[.[\]/]/g, '\\$&')} extends: \\.\\./outside is outside`));
  assert.not.match(r.stderr, /HASH|\$6\$|unknown key/);
});

hostFiles('the command line: exit 2 with the hint, exit 0 with --allow-host-path (repeatable)', async () => {
  const file = await confinedProfile(`${withSrc('/etc/shadow')}cloudInit:\n  userData: ../user-data.yaml\n`);
  const r = await execa('node', [cli, 'validate', file], { reject: false });
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /apps\[0\]\.src: \/etc\/shadow is outside/);
  assert.match(r.stderr, /cloudInit\.userData: \.\.\/user-data\.yaml is outside/);
  assert.match(r.stderr, /hint: .*--allow-host-path DIR/);
  const one = await execa('node', [cli, 'validate', file, '--allow-host-path', '/etc'], { reject: false });
  assert.is(one.exitCode, 2, 'one folder allowed, the other still refused');
  assert.not.match(one.stderr, /apps\[0\]\.src/);
  const both = await execa('node', [cli, 'validate', file, '--allow-host-path', '/etc', '--allow-host-path', tmp], { reject: false });
  assert.is(both.exitCode, 0, both.stderr);
});

hostFiles('a folder app: a link inside it pointing out is copied as a link, never followed', async () => {
  const app = join(confined, 'tree');
  await mkdir(app);
  await writeFile(join(app, 'run.sh'), '#!/bin/sh\n');
  await symlink('/etc/shadow', join(app, 'esc'));
  const ok = await loadProfile(await confinedProfile(withSrc('tree').replace('dest: /opt-vm/app/app.sh', 'dest: /opt-vm/app')));
  assert.ok(ok.ok, ok.ok ? '' : ok.diagnostics.map(formatDiagnostic).join('\n'));
  const tar = await appTar({ src: app, dest: '/opt-vm/app', owner: '0:0' }, tmp);
  try {
    const listing = (await execa('tar', ['-tvf', tar])).stdout.split('\n');
    assert.match(listing.find((l) => l.endsWith('./esc -> /etc/shadow')) ?? listing.join('\n'), /^l/);
    const shadowBytes = (await execa('stat', ['-c', '%s', '/etc/shadow'])).stdout;
    assert.not.ok(listing.some((l) => / \.\/esc$/.test(l)), `esc came in as a file of ${shadowBytes} bytes`);
  } finally {
    await rm(tar, { force: true });
  }
});

hostFiles('OSv: the builder kernel beside the base image is taken only when it really is there, not through a link out of the folder', async () => {
  const dir = join(confined, 'osv-base');
  await mkdir(dir);
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'base.qcow2'), '64M']);
  await symlink(join(tmp, 'builder.elf'), join(dir, builderName));
  const warnings: string[] = [];
  const ctx = { profile: { base: { image: { path: join(dir, 'base.qcow2') } } }, log: { warn: (w: string) => warnings.push(w) } } as unknown as BuildContext;
  const step = { update() {}, succeed() {}, fail() {} };
  await rejects(resolveBuilder(ctx, step), /osv-zfs-builder\.elf is a link out of the base image's folder/, 'a builder linked from outside was used');
  await rm(join(dir, builderName));
  await writeFile(join(dir, builderName), 'a builder kernel\n');
  assert.is(await resolveBuilder(ctx, step), join(await realpath(dir), builderName));
  assert.match(warnings.join('\n'), /is not checked: no SHA256SUMS beside it/);
});

hostFiles.run();

const images = timed(suite('hostile images: inject writes only what the app brought'));

images('a symlink in the image on the way to dest is refused; modes and owners stay inside the app', async () => {
  const image = await makeImage(tmp, 'hostile', {
    'etc/shadow': 'root:*:1::::::\n',
    'etc/passwd': 'root:x:0:0:root:/root:/bin/bash\n',
    'opt-vm/evil': { link: '/etc' },
    'opt-vm/taken/file': 'the image\'s own\n',
  });
  const app = join(tmp, 'app');
  await mkdir(join(app, 'bin'), { recursive: true });
  await writeFile(join(app, 'bin', 'run.sh'), '#!/bin/sh\necho hi\n');
  await symlink('/etc', join(app, 'esc')); // a link in the app itself: re-owned as a link, never followed
  const session = await GuestSession.open([{ path: image, format: 'raw' }], { accel: 'tcg' });
  try {
    await mountGuest(session, { readonly: false, inspect: false });
    const refused = async (dest: string, want: RegExp) => {
      try {
        await injectApp(session, { src: app, dest, owner: '1234:1234', mode: '0666' }, tmp);
      } catch (error) {
        assert.match((error as Error).message, want, `${(error as Error).message}\n${(error as { hint?: string }).hint ?? ''}`);
        return;
      }
      assert.unreachable(`${dest} was written`);
    };
    await refused('/opt-vm/evil/cron.d', /\/opt-vm\/evil is a symlink in the image/);
    await refused('/opt-vm/taken', /already exists in the image/);
    await refused('/opt-vm/taken/file/x', /not a folder/);

    await injectApp(session, { src: app, dest: '/opt-vm/good', owner: '1234:1234', mode: '0666' }, tmp);
    const stat = async (p: string) => (await session.call('lstatns', p)).split('\n');
    const field = (lines: string[], name: string) => Number(lines.find((l) => l.startsWith(`${name}:`))?.split(':')[1]?.trim());
    const shadow = await stat('/etc/shadow');
    assert.is(field(shadow, 'st_uid'), 0, '/etc/shadow keeps its owner');
    assert.is(field(shadow, 'st_mode') & 0o777, 0o644, '/etc/shadow keeps its mode (makeImage wrote 0644)');
    assert.is(field(await stat('/etc'), 'st_uid'), 0, '/etc keeps its owner');
    assert.is(field(await stat('/opt-vm/good/esc'), 'st_uid'), 1234, 'the app\'s link is re-owned itself');
    assert.is(field(await stat('/opt-vm/good/bin/run.sh'), 'st_mode') & 0o777, 0o666);
    assert.is(field(await stat('/opt-vm/taken/file'), 'st_uid'), 0, 'the image\'s own tree is untouched');
    assert.is((await session.call('cat', '/opt-vm/taken/file')).trim(), 'the image\'s own');
  } catch (error) {
    const hint = (error as { hint?: string }).hint;
    throw hint ? new Error(`${(error as Error).message}\n${hint}`) : error;
  } finally {
    await session.close();
  }
});
images('verify refuses a backing file outside the image\'s folder, and a backing loop within 10 s', async () => {
  const run = (...argv: string[]) => execa(argv[0]!, argv.slice(1));
  const elsewhere = join(tmp, 'host-disk.raw');
  await run('truncate', '-s', '64M', elsewhere);
  const mine = join(tmp, 'foreign');
  await mkdir(mine);
  const backed = join(mine, 'backed.qcow2');
  await run('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', elsewhere, '-F', 'raw', backed);
  const r = await execa('node', [cli, 'verify', backed], { reject: false, timeout: 60_000 });
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /is backed by .*host-disk\.raw, outside its own folder/);
  assert.match(r.stderr, /--allow-backing/);

  const a = join(mine, 'a.qcow2');
  const b = join(mine, 'b.qcow2');
  await run('qemu-img', 'create', '-q', '-f', 'qcow2', a, '64M');
  await run('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', a, '-F', 'qcow2', b);
  await run('qemu-img', 'rebase', '-u', '-b', b, '-F', 'qcow2', a);
  const t0 = Date.now();
  const loop = await execa('node', [cli, 'verify', a], { reject: false, timeout: 30_000 });
  assert.is(loop.exitCode, 2, loop.stderr);
  assert.match(loop.stderr, /backing loop/);
  assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
});

images('verify, smoke and rehearse refuse an image another user could swap between the check and the boot: its folder, its owner, its mode', async () => {
  const run = (...argv: string[]) => execa(argv[0]!, argv.slice(1));
  const shared = join(tmp, 'shared');
  await mkdir(shared);
  await chmod(shared, 0o777); // not sticky: another user may rename the image away and put a link in its place
  const img = join(shared, 'img.qcow2');
  await run('qemu-img', 'create', '-q', '-f', 'qcow2', img, '64M');
  for (const command of ['verify', 'smoke', 'rehearse']) {
    const r = await execa('node', [cli, command, img], { reject: false, timeout: 60_000 });
    assert.is(r.exitCode, 2, `${command}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${command}: .*img\\.qcow2 can be changed by another user: .*shared can be written by other users \\(mode 777\\)`));
  }
  // Sticky, like /tmp: others can neither rename nor replace a file of ours, so the check passes
  // and verify goes on to read the disk itself (a broken qcow2 header: refused for what it is, not where it is).
  const sticky = join(tmp, 'sticky');
  await mkdir(sticky);
  await chmod(sticky, 0o1777);
  const inSticky = join(sticky, 'img.qcow2');
  await writeFile(inSticky, Buffer.concat([Buffer.from('QFI\xfb', 'latin1'), Buffer.alloc(508, 0xff)]));
  const fine = await execa('node', [cli, 'verify', inSticky], { reject: false, timeout: 60_000 });
  assert.is(fine.exitCode, 2, fine.stderr);
  assert.match(fine.stderr, /img\.qcow2 cannot be read as a disk image/);
  assert.not.match(fine.stderr, /can be changed by another user/);
  const own = join(tmp, 'own');
  await mkdir(own);
  // A backing name with "..": the kernel follows a link before "..", so the file checked may not be the file qemu opens.
  const dotted = join(own, 'dotted.qcow2');
  await run('qemu-img', 'create', '-q', '-f', 'qcow2', join(own, 'base.qcow2'), '64M');
  await run('qemu-img', 'create', '-q', '-f', 'qcow2', '-u', '-b', '../own/base.qcow2', '-F', 'qcow2', dotted, '64M');
  const dots = await execa('node', [cli, 'verify', dotted], { reject: false, timeout: 60_000 });
  assert.is(dots.exitCode, 2, dots.stderr);
  assert.match(dots.stderr, /names its backing file with "\.\.": \.\.\/own\/base\.qcow2/);
  const theirs = join(own, 'theirs.qcow2');
  await run('qemu-img', 'create', '-q', '-f', 'qcow2', theirs, '64M');
  await run('chown', '65534', theirs);
  const byOwner = await execa('node', [cli, 'verify', theirs], { reject: false, timeout: 60_000 });
  assert.is(byOwner.exitCode, 2, byOwner.stderr);
  assert.match(byOwner.stderr, /theirs\.qcow2 belongs to uid 65534, another user/);
  const open = join(own, 'open.qcow2');
  await run('qemu-img', 'create', '-q', '-f', 'qcow2', open, '64M');
  await chmod(open, 0o666);
  const byMode = await execa('node', [cli, 'verify', open], { reject: false, timeout: 60_000 });
  assert.is(byMode.exitCode, 2, byMode.stderr);
  assert.match(byMode.stderr, /open\.qcow2 can be written by other users \(mode 666\)/);
  assert.match(byMode.stderr, /copy it into a folder only root or you can write/);
});

images('OSv package: no write through an app\'s symlink, no replacing a folder that is not a package', async () => {
  const victim = join(tmp, 'victim');
  await mkdir(victim);
  const appDir = join(tmp, 'osv-app');
  await mkdir(appDir);
  await writeFile(join(appDir, 'hello.js'), 'console.log(1)\n');
  await symlink(victim, join(appDir, 'esc'));
  const osv = await readFile(join(root, 'profiles', 'osv-hello.yaml'), 'utf8');
  const file = join(root, 'profiles', `.test-hostile-osv-${process.pid}.yaml`);
  await writeFile(file, osv.replace(/apps:[\s\S]*$/, `apps:\n  - src: ${appDir}\n    dest: /app\n  - src: ${join(appDir, 'hello.js')}\n    dest: /app/esc/x\n`));
  const out = join(tmp, 'osv-out');
  try {
    const r = await execa('node', [cli, 'build', file, '-o', out, '--package-only', '--allow-host-path', tmp], { reject: false });
    assert.is(r.exitCode, 2, r.stderr); // refused at validate: the second app is inside the first
    assert.match(r.stderr, /apps\[1\]\.dest: \/app\/esc\/x overlaps the dest of apps\[0\]/);
    // Past validate (a profile object made in code), the package writer still refuses the link.
    const { profile } = await loadProfileOrThrow(join(root, 'profiles', 'osv-hello.yaml'));
    profile.apps = [
      { src: appDir, dest: '/app', owner: '0:0' },
      { src: join(appDir, 'hello.js'), dest: '/app/esc/x', owner: '0:0' },
    ];
    await rejects(writePackage(profile, out), /app \/app\/esc\/x: app\/esc is a symlink another app brought/, 'written through the link');
    assert.equal(await readdir(victim), [], 'nothing written through the link');
    assert.not.ok(existsSync(join(out, 'osv-hello')), 'no half-written package');

    // 'logs' itself is refused at validate; any folder that is not an earlier package is kept too.
    await writeFile(file, osv.replace('name: osv-hello', 'name: results'));
    await mkdir(join(out, 'results'), { recursive: true });
    await writeFile(join(out, 'results', 'keep.log'), 'an earlier build\'s log\n');
    const logs = await execa('node', [cli, 'build', file, '-o', out, '--package-only'], { reject: false });
    assert.is(logs.exitCode, 1, logs.stderr);
    assert.match(logs.stderr, /is not a Capstan package guestforge wrote: not replacing it/);
    assert.is(await readFile(join(out, 'results', 'keep.log'), 'utf8'), 'an earlier build\'s log\n');

    await writeFile(file, osv.replace('dest: /hello.js', 'dest: /Capstanfile'));
    const own = await validate(file);
    assert.is(own.exitCode, 2);
    assert.match(own.stderr, /apps\[0\]\.dest: \/Capstanfile is the Capstan package's own/);
  } finally {
    await rm(file, { force: true });
  }
});
images.after(() => rm(tmp, { recursive: true, force: true }));
images.run();
