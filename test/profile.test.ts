import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { shippedProfiles } from './helpers/shipped.ts';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { formatDiagnostic } from '../src/profile/diagnostic.ts';
import { loadProfile } from '../src/loader/profile.ts';
import { hostPathFields } from '../src/profile/host-paths.ts';
import { renderJsonSchema } from '../src/loader/json-schema.ts';
import { bootstrapKey, buildStubDeb, hookDir, mmdebstrapArgs, stubPackages } from '../src/os/debian/bootstrap.ts';
import { initramfsModules } from '../src/os/debian/format.ts';
import { activeTrims } from '../src/policy/boot.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');

/** 1-based line of the default profile's disk size, so the tests follow edits of the profile. */
const sizeLine = (await readFile(join(root, 'profiles', 'debian-12-hpc.yaml'), 'utf8')).split('\n').findIndex((l) => l === '  size: 4G') + 1;

async function scratchCopy(edit: (text: string) => string): Promise<string> {
  const file = join(root, 'profiles', `.test-${process.pid}-${Math.random().toString(16).slice(2)}.yaml`);
  const text = await readFile(join(root, 'profiles', 'debian-12-hpc.yaml'), 'utf8');
  await writeFile(file, edit(text));
  return file;
}

const shipped = suite('shipped profiles');
shipped('every shipped profile validates', async () => {
  assert.ok(shippedProfiles.some((p) => p.name === 'osv-native'), 'found by glob, osv-native included');
  for (const { name, file, allowHostPaths } of shippedProfiles) {
    const result = await loadProfile(file, { allowHostPaths });
    assert.ok(result.ok, `${name}: ${result.ok ? '' : result.diagnostics.map(formatDiagnostic).join('\n')}`);
  }
});
shipped('extends: lists append, scalars override, paths resolve from the writing file', async () => {
  const result = await loadProfile(join(root, 'profiles', 'debian-12-vrdma.yaml'));
  assert.ok(result.ok);
  if (!result.ok) return;
  assert.is(result.value.profile.name, 'debian-12-vrdma');
  assert.is(result.value.profile.vrdma.enabled, true);
  assert.is(result.value.profile.apps[0]?.src, join(root, 'profiles', 'apps', 'hello-mpi', 'run.sh'));
  assert.is(result.value.files.length, 2);
});
shipped('every schema field that names a host file is one the folder rule confines (host-paths.ts), and no other', () => {
  const found: string[] = [];
  const walk = (node: Record<string, any>, path: string[]) => {
    if (typeof node.description === 'string' && node.description.includes('--allow-host-path')) found.push(path.join('.'));
    for (const [key, child] of Object.entries(node.properties ?? {})) walk(child as Record<string, any>, [...path, key]);
    if (node.items) walk(node.items, [...path, '*']);
    for (const child of [...(node.anyOf ?? []), ...(node.oneOf ?? []), ...(node.allOf ?? [])]) walk(child, path);
  };
  walk(JSON.parse(renderJsonSchema()), []);
  assert.equal([...new Set(found)].sort(), hostPathFields.map((f) => f.join('.')).sort());
});
shipped('the e2e and libvirt fixtures share the default profile\'s base, so tests bootstrap one base, not two', async () => {
  const keyOf = async (file: string) => {
    const result = await loadProfile(file);
    assert.ok(result.ok, file);
    return result.ok ? bootstrapKey(result.value.profile, ['deb http://mirror.invalid/debian trixie main']) : '';
  };
  const expected = await keyOf(join(root, 'profiles', 'debian-13-hpc.yaml'));
  for (const name of ['fail-command', 'timeout', 'lean']) {
    assert.is(await keyOf(join(root, 'test', 'fixtures', 'profiles', `${name}.yaml`)), expected, `${name}.yaml: base.bootstrap differs from debian-13-hpc.yaml`);
  }
});
shipped('bootstrap trims: dpkg path-excludes (docs, desktop kernel drivers), the initramfs module list and the GRUB timeout in the mmdebstrap argv; boot.keep leaves each out; the hook writes them', async () => {
  const result = await loadProfile(join(root, 'profiles', 'debian-12-hpc.yaml'));
  assert.ok(result.ok);
  if (!result.ok) return;
  const mirrors = ['deb http://mirror.invalid/debian bookworm main'];
  const argv = mmdebstrapArgs(result.value.profile, mirrors, '/t');
  assert.ok(argv.includes('--dpkgopt=path-exclude=/usr/share/doc/*'), argv.join(' '));
  assert.ok(argv.includes('--dpkgopt=path-include=/usr/share/doc/*/copyright'));
  // The kernel's desktop drivers, under both places a kernel package puts its modules; RDMA, 9p and NFS are not touched.
  assert.ok(argv.includes('--dpkgopt=path-exclude=/lib/modules/*/kernel/drivers/gpu/*'), argv.join(' '));
  assert.ok(argv.includes('--dpkgopt=path-exclude=/usr/lib/modules/*/kernel/sound/*'));
  assert.not.ok(argv.some((a) => a.startsWith('--dpkgopt=') && /modules.*(infiniband|9p|nfs|virtio|drivers\/net\/ethernet|drivers\/scsi)/.test(a)), argv.join(' '));
  const hook = argv.find((a) => a.startsWith('--essential-hook='));
  assert.is(hook, `--essential-hook=sh ${join(hookDir, 'essential.sh')} "$1" initramfs-modules=${initramfsModules.join(',')} grub-timeout=0 kernel-arg=quiet kernel-arg=fsck.mode=skip root-fsck-pass=0`);
  const kept = mmdebstrapArgs({ ...result.value.profile, boot: { keep: ['initramfs-disk-modules', 'dpkg-no-docs', 'grub-no-wait', 'kernel-no-desktop-drivers', 'kernel-quiet', 'boot-no-fsck'] } }, mirrors, '/t');
  assert.not.ok(kept.some((a) => a.startsWith('--dpkgopt=')), kept.join(' '));
  assert.is(kept.find((a) => a.startsWith('--essential-hook=')), `--essential-hook=sh ${join(hookDir, 'essential.sh')} "$1"`);
  assert.is.not(await bootstrapKey({ ...result.value.profile, boot: { keep: ['dpkg-no-docs'] } }, mirrors), await bootstrapKey(result.value.profile, mirrors));

  const chroot = await mkdtemp(join(tmpdir(), 'gf-hook-'));
  try {
    await mkdir(join(chroot, 'etc'));
    await execa('sh', [join(hookDir, 'essential.sh'), chroot, 'grub-timeout=0']);
    assert.is(await readFile(join(chroot, 'etc/fstab'), 'utf8'), 'LABEL=rootfs / ext4 defaults,errors=remount-ro 0 1\n', 'the root is checked at boot without the trim');
    await execa('sh', [join(hookDir, 'essential.sh'), chroot, 'initramfs-modules=virtio_blk,ext4', 'grub-timeout=0', 'kernel-arg=quiet', 'kernel-arg=fsck.mode=skip', 'root-fsck-pass=0']);
    assert.is(await readFile(join(chroot, 'etc/fstab'), 'utf8'), 'LABEL=rootfs / ext4 defaults,errors=remount-ro 0 0\n');
    assert.is(await readFile(join(chroot, 'etc/default/grub.d/91-guestforge-timeout.cfg'), 'utf8'), 'GRUB_TIMEOUT=0\n');
    // Sourced by update-grub after 90-guestforge.cfg, the way grub-mkconfig reads the folder.
    const cmdline = await execa('sh', ['-c', 'GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0"; . "$1"; echo "$GRUB_CMDLINE_LINUX_DEFAULT"', 'sh', join(chroot, 'etc/default/grub.d/92-guestforge-cmdline.cfg')]);
    assert.is(cmdline.stdout, 'console=ttyS0 quiet fsck.mode=skip');
    for (const arg of ['quiet;reboot', 'a b', '$(id)', '']) {
      const refused = await execa('sh', [join(hookDir, 'essential.sh'), chroot, `kernel-arg=${arg}`], { reject: false });
      assert.is(refused.exitCode, 1, arg);
      assert.match(refused.stderr, /bad kernel argument/);
    }
    assert.is(await readFile(join(chroot, 'etc/initramfs-tools/conf.d/guestforge-modules'), 'utf8'), 'MODULES=list\n');
    assert.is(await readFile(join(chroot, 'usr/share/initramfs-tools/modules.d/guestforge'), 'utf8'), 'virtio_blk\next4\n');
    const bad = await execa('sh', [join(hookDir, 'essential.sh'), chroot, 'no-such-trim'], { reject: false });
    assert.is(bad.exitCode, 1);
    assert.match(bad.stderr, /unknown trim no-such-trim/);
  } finally {
    await rm(chroot, { recursive: true, force: true });
  }
});
shipped('Debian 13 trims: the ROCm stub installed by the essential hook, tmp.mount masked, no sshd on vsock; none of them for Debian 12', async () => {
  const load = async (name: string) => {
    const r = await loadProfile(join(root, 'profiles', name));
    if (!r.ok) throw new Error(`${name} does not load`);
    return r.value.profile;
  };
  const d13 = await load('debian-13-hpc.yaml');
  const d12 = await load('debian-12-hpc.yaml');
  assert.equal(activeTrims(d13).filter((t) => t.releases).map((t) => t.id), ['no-ssh-vsock', 'tmp-on-disk', 'ucx-no-rocm']);
  assert.equal(activeTrims(d12).filter((t) => t.releases), [], 'every release-bound trim is for 13 only');
  assert.equal(stubPackages(d12), []);
  assert.equal(stubPackages({ ...d13, boot: { keep: ['ucx-no-rocm'] } }), [], 'boot.keep keeps ROCm');
  const [stub] = stubPackages(d13);
  const mirrors = ['deb http://mirror.invalid/debian trixie main'];
  const argv = mmdebstrapArgs(d13, mirrors, '/t', ['/w/stub.deb']);
  assert.match(argv.find((a) => a.startsWith('--essential-hook='))!, / kernel-arg=systemd\.ssh_auto=no stub-deb=\/w\/stub\.deb$/);
  assert.ok(argv.includes('--dpkgopt=path-exclude=/usr/lib/*/ucx/*rocm*'));
  assert.not.ok(argv.find((a) => a.startsWith('--include='))!.includes('.deb'), 'the stub is no --include: apt must find it installed');
  assert.throws(() => mmdebstrapArgs(d13, mirrors, '/t'), /one \.deb per stub/);
  // A path with a space or a quote stays one word for the hook's shell.
  const odd = mmdebstrapArgs(d13, mirrors, '/t', ["/w/it's here/stub.deb"]).find((a) => a.startsWith('--essential-hook='))!;
  const words = await execa('sh', ['-c', `set -- ${odd.replace(/^--essential-hook=sh \S+ "\$1" /, '')}; printf '%s\\n' "$@"`]);
  assert.is(words.stdout.split('\n').at(-1), "stub-deb=/w/it's here/stub.deb");

  // The real stub, made by dpkg-deb: it provides the ROCm runtime UCX depends on (versioned, so
  // `libamdhip64-5 (>= 4.5.2)` holds) and conflicts with it, so installing the real one replaces it.
  const dir = await mkdtemp(join(tmpdir(), 'gf-stub-'));
  try {
    const deb = await buildStubDeb(stub!, dir);
    const field = async (name: string) => (await execa('dpkg-deb', ['-f', deb, name])).stdout;
    assert.is(await field('Package'), 'guestforge-no-rocm');
    assert.match(await field('Provides'), /^libamdhip64-5 \(= 5\.7\.1-99\), libhsa-runtime64-1 \(= 6\.1\.2-99\)$/);
    assert.is(await field('Conflicts'), 'libamdhip64-5, libhsa-runtime64-1');
    // Versioned, so trixie's libucx0 `Depends: libamdhip64-5 (>= 4.5.2), libhsa-runtime64-1 (>= 5.7.1)` holds.
    for (const [name, floor] of [['libamdhip64-5', '4.5.2'], ['libhsa-runtime64-1', '5.7.1']] as const) {
      const provided = stub!.provides.find((p) => p.name === name)!.version;
      assert.is((await execa('dpkg', ['--compare-versions', provided, 'ge', floor], { reject: false })).exitCode, 0, `${name} ${provided} >= ${floor}`);
    }
    // The essential hook refuses a stub path that is not an absolute .deb, before touching the chroot.
    await mkdir(join(dir, 'chroot', 'etc'), { recursive: true });
    for (const bad of ['stub.deb', '/w/stub.txt']) {
      const r = await execa('sh', [join(hookDir, 'essential.sh'), join(dir, 'chroot'), `stub-deb=${bad}`], { reject: false });
      assert.is(r.exitCode, 1, bad);
      assert.match(r.stderr, /bad stub package path/);
    }
    assert.is((await execa('dpkg-deb', ['-c', deb])).stdout.trim().split('\n').length, 1, 'no files but its root folder');
    const first = await readFile(deb);
    await buildStubDeb(stub!, dir);
    assert.equal(await readFile(deb), first, 'byte-stable (SOURCE_DATE_EPOCH)');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
shipped.run();

const errors = suite('profile errors');
errors('misspelled nested key: file:line:col, path and suggestion, exit 2', async () => {
  const file = await scratchCopy((t) => t.replace('  size: 4G', '  sise: 4G'));
  const run = await execa('node', [cli, 'validate', file], { reject: false });
  assert.is(run.exitCode, 2);
  assert.match(run.stderr, new RegExp(`:${sizeLine}:3 disk\\.sise: unknown key "sise"`));
  assert.match(run.stderr, /did you mean "size"\?/);
});
errors('app under /opt is refused, naming /opt-vm', async () => {
  const file = await scratchCopy((t) => t.replace('dest: /opt-vm/hello-mpi/README', 'dest: /opt/app'));
  const run = await execa('node', [cli, 'validate', file], { reject: false });
  assert.is(run.exitCode, 2);
  assert.match(run.stderr, /apps\[1\]\.dest: "\/opt\/app" is under \/opt/);
  assert.match(run.stderr, /\/opt-vm/);
});
errors('an apps volume too small, or one that leaves the root too little of the disk, is refused at disk.appsVolume with what to change', async () => {
  for (const [volume, message, hint] of [
    ['8M', /disk\.appsVolume: 8M is too small for an ext4 apps volume/, /at least 16(\.0)? MiB, or "none"/],
    ['0M', /disk\.appsVolume: 0M is too small for an ext4 apps volume/, /or "none" to keep apps in the root filesystem/],
    ['0', /:\d+:\d+ disk\.appsVolume: expected a size like 512M, or "none"/, /\.test-\d+-[0-9a-f]+\.yaml:\d+:\d+/],
    ['3G', /disk\.appsVolume: 3G leaves the root filesystem 1(\.0)? GiB of the 4G disk/, /raise disk\.size or lower disk\.appsVolume/],
  ] as const) {
    const file = await scratchCopy((t) => t.replace('  size: 4G', `  size: 4G\n  appsVolume: ${volume}`));
    try {
      const r = await execa('node', [cli, 'validate', file], { reject: false });
      assert.is(r.exitCode, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.match(r.stderr, hint);
    } finally {
      await rm(file, { force: true });
    }
  }
});
errors('os.release and the suite name the same Debian release', async () => {
  const file = await scratchCopy((t) => t.replace('suite: bookworm', 'suite: trixie'));
  try {
    const r = await execa('node', [cli, 'validate', file], { reject: false });
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /:\d+:\d+ os\.release: "12" is not the release of suite trixie \(Debian 13\)/);
  } finally {
    await rm(file, { force: true });
  }
});
errors('an app in the apps volume\'s lost+found is refused', async () => {
  const file = await scratchCopy((t) => t.replace('dest: /opt-vm/hello-mpi/README', 'dest: /opt-vm/lost+found/README'));
  try {
    const r = await execa('node', [cli, 'validate', file], { reject: false });
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /apps\[1\]\.dest: "\/opt-vm\/lost\+found\/README" is in \/opt-vm\/lost\+found/);
  } finally {
    await rm(file, { force: true });
  }
});
errors('bad size and bad sha256 are located on their value', async () => {
  const file = await scratchCopy((t) => t.replace('size: 4G', 'size: lots'));
  const result = await loadProfile(file);
  assert.not.ok(result.ok);
  if (result.ok) return;
  const text = result.diagnostics.map(formatDiagnostic).join('\n');
  assert.match(text, new RegExp(`:${sizeLine}:9 disk\\.size: expected a size like 8G`));
});
errors('bootstrap is refused for redhat', async () => {
  const file = await scratchCopy((t) => t.replace('family: debian', 'family: redhat').replace('release: "12"', 'release: "9"'));
  const result = await loadProfile(file);
  assert.not.ok(result.ok);
  if (result.ok) return;
  assert.ok(result.diagnostics.some((d) => d.path.join('.') === 'base.bootstrap' && /only for Debian/.test(d.message)));
});
errors('missing file is a located error', async () => {
  const result = await loadProfile('/nonexistent/profile.yaml');
  assert.not.ok(result.ok);
});
errors.after(async () => {
  const { readdir, rm } = await import('node:fs/promises');
  for (const n of await readdir(join(root, 'profiles'))) if (n.startsWith('.test-')) await rm(join(root, 'profiles', n));
});
void copyFile;
errors.run();
