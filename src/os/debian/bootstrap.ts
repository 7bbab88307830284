/**
 * A Debian base from scratch: mmdebstrap into a folder, an ext4 filled from
 * that folder by mke2fs -d inside a partitioned sparse raw file (no loop
 * mounts, no root-only kernel features), then one guestfish launch that only
 * installs GRUB. About twice as fast here as tar-in through guestfish.
 */
import { redactUrl } from '../../util/url.ts';
import { shellQuote } from '../../util/quote.ts';
import { appendFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../exec/run.ts';
import { GuestSession } from '../../guestfs/session.ts';
import type { Step } from '../../log.ts';
import type { Profile } from '../../profile/schema.ts';
import { parseSize } from '../../profile/units.ts';
import { projectRoot } from '../../util/project.ts';
import { sha256Text, writeOwnerOnly } from '../../util/fs.ts';
import { mirrorLines } from '../../host/apt-sources.ts';
import { aptAuthPath, splitSourceLines } from './apt-auth.ts';
import type { StubPackage } from '../../model/trim.ts';
import { activeTrims } from '../../policy/boot.ts';
import type { BuildContext } from '../../stages/types.ts';
import type { BuildOnlyFile } from '../../cloudinit/seed.ts';
import type { AppsVolume } from '../../model/disk.ts';
import { convertPlain } from '../../vm/qemu-img.ts';

/** What every guestforge Debian base has, besides the profile's extra packages. */
export function bootstrapPackages(profile: Profile): string[] {
  const kernel = profile.os.family === 'debian' && profile.os.kernel === 'cloud' ? 'linux-image-cloud-amd64' : 'linux-image-amd64';
  return [
    kernel, 'grub-pc', 'systemd-sysv', 'systemd-resolved', 'dbus', 'cloud-init', 'cloud-guest-utils',
    'openssh-server', 'ca-certificates', 'sudo', 'iproute2', 'kmod', 'udev',
    ...(profile.base.bootstrap?.packages ?? []),
  ];
}

export const hookDir = join(projectRoot, 'src', 'os', 'debian', 'hooks');

/** Pure: the stub packages a profile's bootstrap installs (trims such as ucx-no-rocm). */
export function stubPackages(profile: Profile): StubPackage[] {
  return activeTrims(profile).flatMap((t) => (t.bootstrap?.stub ? [t.bootstrap.stub] : []));
}

/** Pure: a stub's control file. Provides and Conflicts the same names: the real packages replace it. */
export function stubControl(stub: StubPackage): string {
  return [
    `Package: ${stub.name}`,
    `Version: ${stub.version}`,
    'Architecture: all',
    'Maintainer: guestforge <guestforge@localhost>',
    'Section: misc',
    'Priority: optional',
    `Provides: ${stub.provides.map((p) => `${p.name} (= ${p.version})`).join(', ')}`,
    `Conflicts: ${stub.provides.map((p) => p.name).join(', ')}`,
    `Description: ${stub.description}`,
    '',
  ].join('\n');
}

/** The stub as a .deb in `dir` (dpkg-deb, no files but its control; SOURCE_DATE_EPOCH makes it byte-stable). */
export async function buildStubDeb(stub: StubPackage, dir: string): Promise<string> {
  const tree = join(dir, stub.name);
  await rm(tree, { recursive: true, force: true });
  await mkdir(join(tree, 'DEBIAN'), { recursive: true, mode: 0o755 });
  await writeFile(join(tree, 'DEBIAN', 'control'), stubControl(stub), { mode: 0o644 });
  const deb = join(dir, `${stub.name}_${stub.version}_all.deb`);
  await run(['dpkg-deb', '--root-owner-group', '--build', tree, deb], { env: { SOURCE_DATE_EPOCH: '0' } });
  await rm(tree, { recursive: true, force: true });
  return deb;
}

/**
 * Pure: the mmdebstrap command line. `stubDebs`: the paths of stubPackages(profile) as .deb files.
 * `authFile`: where the mirrors' credentials are (splitSourceLines(mirrors).auth), needed when
 * they have any: the mirror lines here have none, since any user can read a command line.
 */
export function mmdebstrapArgs(profile: Profile, mirrors: string[], target: string, stubDebs: readonly string[] = [], authFile?: string): string[] {
  const bootstrap = profile.base.bootstrap;
  if (!bootstrap) throw new Error('mmdebstrapArgs: profile has no base.bootstrap');
  const sources = splitSourceLines(mirrors);
  if (sources.auth && !authFile) throw new Error('mmdebstrapArgs: a mirror has credentials: give the auth file');
  // mmdebstrap's apt runs with the tree as its Dir, so it reads the tree's auth.conf.d; the last
  // customize hook removes the file before the tree becomes the disk.
  const auth = sources.auth
    ? { setup: [`--setup-hook=install -D -m 0600 ${shellQuote([authFile!])} "$1${aptAuthPath}"`], customize: [`--customize-hook=rm -f "$1${aptAuthPath}"`] }
    : { setup: [], customize: [] };
  const trims = activeTrims(profile).flatMap((t) => (t.bootstrap ? [t.bootstrap] : []));
  if (stubDebs.length !== stubPackages(profile).length) throw new Error('mmdebstrapArgs: one .deb per stub package');
  // The stubs are installed by the essential hook, before apt resolves --include: their Provides count.
  const words = [...trims.flatMap((t) => (t.hookArg ? t.hookArg.split(' ') : [])), ...stubDebs.map((d) => `stub-deb=${d}`)];
  // mmdebstrap runs a hook through sh: every path and word quoted by the one helper (plain ones stay plain).
  const hookArgs = words.length ? ` ${shellQuote(words)}` : '';
  return [
    'mmdebstrap',
    `--variant=${bootstrap.variant}`,
    '--format=directory',
    `--include=${bootstrapPackages(profile).join(',')}`,
    '--aptopt=Acquire::Retries "3"',
    ...trims.flatMap((t) => t.dpkgopt ?? []).map((o) => `--dpkgopt=${o}`),
    `--essential-hook=sh ${shellQuote([join(hookDir, 'essential.sh')])} "$1"${hookArgs}`,
    ...auth.setup,
    `--customize-hook=sh ${shellQuote([join(hookDir, 'customize.sh')])} "$1"`,
    ...auth.customize,
    bootstrap.suite,
    target,
    ...sources.lines,
  ];
}

export const partitionOffset = 1024 * 1024;

/** The label the apps volume's filesystem carries, and its fstab names it by. */
export const appsVolumeLabel = 'gf-apps';

/**
 * Pure: where a bootstrapped base keeps its apps volume, or undefined when it has none (an
 * imported base's layout is not ours; `disk.appsVolume: none`). It sits first on the disk
 * (partition 2, from 1 MiB) so the root, partition 1, is last and can grow with the disk.
 */
export function appsVolumeOf(profile: Pick<Profile, 'os' | 'base' | 'disk' | 'layout' | 'boot'>): AppsVolume | undefined {
  if (!profile.base.bootstrap || profile.disk.appsVolume === 'none') return undefined;
  const mib = 1024 * 1024;
  const noFsck = activeTrims(profile).some((t) => t.id === 'boot-no-fsck');
  return { offset: partitionOffset, bytes: Math.floor(parseSize(profile.disk.appsVolume) / mib) * mib, label: appsVolumeLabel, mountpoint: profile.layout.optVm, fsckPass: noFsck ? 0 : 2 };
}

/** Pure: partition 1 the bootable root (to the end of the disk), partition 2 the apps volume before it. */
export function sfdiskScript(volume: AppsVolume | undefined): string {
  if (!volume) return 'label: dos\nstart=2048, type=83, bootable\n';
  const sector = 512;
  return `label: dos\nstart=${(volume.offset + volume.bytes) / sector}, type=83, bootable\nstart=${volume.offset / sector}, size=${volume.bytes / sector}, type=83\n`;
}

/**
 * Pure: the fstab line that mounts the apps volume. `nofail`: a boot without it (the rootfs
 * tar or squashfs output elsewhere) goes on; the smoke check says when it is not mounted.
 * `nodev`: no device node on it opens hardware (validate refuses them in app trees too).
 * Not `nosuid`: apps keep their setuid bits by design (an MPI launcher's helper may need one).
 */
export function appsVolumeFstab(volume: AppsVolume): string {
  return `LABEL=${volume.label} ${volume.mountpoint} ext4 defaults,nofail,nodev 0 ${volume.fsckPass}\n`;
}

/** `mirrors`: the apt source lines for the suite (from the host's apt sources or the profile). */
export async function bootstrapBase(ctx: BuildContext, step: Step, output: string, mirrors: string[]): Promise<void> {
  const { profile } = ctx;
  const suite = profile.base.bootstrap!.suite;
  const rootDir = join(ctx.workDir, 'rootfs');
  const raw = join(ctx.workDir, 'base.raw');
  const authFile = join(ctx.workDir, 'mirror-auth.conf');
  await rm(rootDir, { recursive: true, force: true });
  await mkdir(ctx.workDir, { recursive: true, mode: 0o700 });
  try {
    step.update(`mmdebstrap ${suite} from ${redactUrl(mirrors[0]?.split(' ')[1] ?? '?')}`);
    const logFile = join(ctx.logDir, 'mmdebstrap.log');
    const stubDebs = await Promise.all(stubPackages(profile).map((stub) => buildStubDeb(stub, ctx.workDir)));
    const { auth } = splitSourceLines(mirrors);
    if (auth) await writeOwnerOnly(authFile, auth);
    await run(mmdebstrapArgs(profile, mirrors, rootDir, stubDebs, authFile), {
      timeoutMs: 30 * 60_000,
      cancelSignal: ctx.signal,
      onLine: (line) => {
        ctx.log.detail(`mmdebstrap: ${line}`);
        if (line.startsWith('I: ')) step.update(line.slice(3, 80));
      },
    }).catch(async (error: unknown) => {
      ctx.log.detail(`mmdebstrap log: ${logFile}`);
      throw error;
    });

    const volume = appsVolumeOf(profile);
    if (volume) {
      // The mount point stays in the root, so the folder is there even if the volume is not.
      await mkdir(join(rootDir, volume.mountpoint), { recursive: true, mode: 0o755 });
      await appendFile(join(rootDir, 'etc', 'fstab'), appsVolumeFstab(volume));
    }
    step.update('filesystem from the tree (mke2fs -d)');
    const bytes = parseSize(profile.disk.size);
    const rootOffset = volume ? volume.offset + volume.bytes : partitionOffset;
    await run(['truncate', '-s', String(bytes), raw]);
    await run(['sfdisk', '--quiet', raw], { input: sfdiskScript(volume) });
    const fsKiB = Math.floor((bytes - rootOffset) / 1024);
    await run(['mke2fs', '-q', '-t', 'ext4', '-L', 'rootfs', '-d', rootDir, '-E', `offset=${rootOffset},nodiscard`, raw, `${fsKiB}k`], {
      timeoutMs: 10 * 60_000,
    });
    // An empty one: the build VM's commands may install there; the inject stage writes the apps.
    if (volume) await run(['mke2fs', '-q', '-t', 'ext4', '-L', volume.label, '-E', `offset=${volume.offset},nodiscard,root_owner=0:0`, raw, `${volume.bytes / 1024}k`]);
  } finally {
    await rm(authFile, { force: true });
    await rm(rootDir, { recursive: true, force: true });
  }
  await convertPlain({ path: raw, format: 'raw' }, 'qcow2', output);
  await rm(raw, { force: true });

  step.update('GRUB (one guestfish launch)');
  const session = await GuestSession.open([{ path: output, format: 'qcow2' }], { accel: ctx.accel, smp: 2, onRetry: (r) => ctx.log.warn(`${r}; trying once more`) });
  try {
    await session.call('mount', '/dev/sda1', '/');
    // The appliance's own name for the disk varies between runs (sda, sdb):
    // ask the mounted root which disk it is on.
    await session.call('sh', [
      'set -e',
      'disk=/dev/$(lsblk -no PKNAME "$(findmnt -no SOURCE /)")',
      'grub-install --target=i386-pc "$disk"',
      'update-grub',
    ].join('\n'));
  } finally {
    await session.close();
  }
  const size = (await stat(output)).size;
  step.update(`${Math.round(size / 1024 / 1024)} MiB`);
}

/** Bump when the way a bootstrapped base is made changes, so old cache entries are not reused. */
const bootstrapRecipe = 7;

async function mirrorsOf(profile: Profile): Promise<string[]> {
  const bootstrap = profile.base.bootstrap!;
  return mirrorLines(bootstrap.suite, bootstrap.mirror);
}

/**
 * The build VM's credentials for the mirror its base names: the base keeps the mirror in its
 * sources but not the credentials, and the build VM's apt (packages, commands) needs them.
 */
export async function mirrorAuthFiles(profile: Profile): Promise<BuildOnlyFile[]> {
  if (!profile.base.bootstrap) return [];
  const { auth } = splitSourceLines(await mirrorsOf(profile));
  return auth ? [{ path: aptAuthPath, content: auth }] : [];
}

/** The cache key of a bootstrapped base: everything that changes its bytes, nothing that does not (such as the profile's name). */
export async function bootstrapKey(profile: Profile, mirrors?: string[]): Promise<string> {
  const hooks = await Promise.all(['essential.sh', 'customize.sh'].map((f) => readFile(join(hookDir, f), 'utf8')));
  const volume = appsVolumeOf(profile);
  const lines = mirrors ?? (await mirrorsOf(profile));
  const { auth } = splitSourceLines(lines);
  return sha256Text(JSON.stringify({
    recipe: bootstrapRecipe,
    // Where this checkout lives is no input: the hooks' content is. Nor is where the work folder is.
    argv: mmdebstrapArgs(profile, lines, 'TARGET', stubPackages(profile).map((p) => `STUBS/${p.name}.deb`), 'AUTH').map((a) => a.replaceAll(hookDir, 'HOOKS')),
    // The login may decide what the mirror serves; only a hash of it, under the hash that is the key.
    ...(auth ? { mirrorAuth: sha256Text(auth) } : {}),
    hooks,
    stubs: stubPackages(profile).map(stubControl),
    size: profile.disk.size,
    sfdisk: sfdiskScript(volume),
    appsVolume: volume ? appsVolumeFstab(volume) : null,
  })).slice(0, 16);
}

/** Pure: the base as the manifest and provenance name it: suite, variant and first mirror, redacted. */
export function bootstrapSource(profile: Profile, mirrors: readonly string[]): string {
  const bootstrap = profile.base.bootstrap!;
  return `mmdebstrap ${bootstrap.suite} (${bootstrap.variant}) from ${bootstrapMirror(mirrors) ?? '?'}`;
}

/** The first mirror mmdebstrap is given, redacted: the base's mirror as its records name it. */
export function bootstrapMirror(mirrors: readonly string[]): string | undefined {
  const uri = mirrors[0]?.split(' ')[1];
  return uri ? redactUrl(uri) : undefined;
}

/** The driver's bootstrap: mirrors from the host's apt sources (or the profile), then the base disk. */
export async function bootstrapDebian(ctx: BuildContext, step: Step, output: string): Promise<{ source: string }> {
  const mirrors = await mirrorsOf(ctx.profile);
  await bootstrapBase(ctx, step, output, mirrors);
  const mirror = bootstrapMirror(mirrors);
  return { source: bootstrapSource(ctx.profile, mirrors), ...(mirror ? { mirror } : {}) };
}
