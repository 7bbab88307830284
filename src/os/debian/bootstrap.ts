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
import { gptType, partitionNumber, type AppsVolume, type DiskLayout, type Extent, type Firmware } from '../../model/disk.ts';
import { firmwareOf } from '../../policy/firmware.ts';
import { convertPlain } from '../../vm/qemu-img.ts';

/** What every guestforge Debian base has, besides the profile's extra packages. */
export function bootstrapPackages(profile: Profile): string[] {
  const kernel = profile.os.family === 'debian' && profile.os.kernel === 'cloud' ? 'linux-image-cloud-amd64' : 'linux-image-amd64';
  return [
    kernel, ...grubPackages(firmwareOf(profile) ?? 'bios'), 'systemd-sysv', 'systemd-resolved', 'dbus', 'cloud-init', 'cloud-guest-utils',
    'openssh-server', 'ca-certificates', 'sudo', 'iproute2', 'kmod', 'udev',
    ...(profile.base.bootstrap?.packages ?? []),
  ];
}

/**
 * Pure: GRUB as each firmware needs it. BIOS: grub-pc. UEFI: grub-efi-amd64 with Debian's signed
 * chain (shim-signed, grub-efi-amd64-signed; the kernel package is signed already), whether or not
 * the image is to prove Secure Boot: it costs a few MiB and lets any site turn Secure Boot on.
 * Hybrid: grub-cloud-amd64, Debian's cloud-image package for both, which reinstalls both GRUBs
 * whenever GRUB or shim is upgraded (dpkg triggers), so neither is left behind by an upgrade.
 */
export function grubPackages(firmware: Firmware): string[] {
  if (firmware === 'bios') return ['grub-pc'];
  const signed = ['shim-signed', 'grub-efi-amd64-signed'];
  return firmware === 'uefi' ? ['grub-efi-amd64', ...signed] : ['grub-cloud-amd64', 'grub-pc-bin', 'grub-efi-amd64-bin', ...signed];
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

const mib = 1024 * 1024;

/** GRUB's core for BIOS on a GPT disk: 1 MiB is what Debian's cloud images give it (it holds ~100 KiB). */
export const biosBootBytes = mib;

/** The EFI system partition: shim, GRUB and MokManager twice (Debian's folder and the removable path) take ~12 MiB. */
export const espBytes = 64 * mib;


/** Pure: the ESP's FAT volume id, from the suite and disk size (not the profile's name: bases are shared; a disk's copies share it, as they share the root's UUID). */
export function espVolumeId(profile: Pick<Profile, 'base' | 'disk'>): string {
  const hex = sha256Text(`esp:${profile.base.bootstrap?.suite ?? ''}:${profile.disk.size}`).slice(0, 8).toUpperCase();
  return `${hex.slice(0, 4)}-${hex.slice(4)}`;
}

/**
 * Pure: where a bootstrapped base's partitions lie (model/disk.ts DiskLayout), or undefined for
 * an imported base (its layout is not ours). The root is always last, so that it can grow.
 */
export function diskLayoutOf(profile: Pick<Profile, 'os' | 'base' | 'disk' | 'layout' | 'boot'>): DiskLayout | undefined {
  if (!profile.base.bootstrap) return undefined;
  const firmware = firmwareOf(profile) ?? 'bios';
  const diskBytes = parseSize(profile.disk.size);
  let next = partitionOffset;
  const take = (bytes: number): Extent => {
    const extent = { offset: next, bytes };
    next += bytes;
    return extent;
  };
  const biosBoot = firmware === 'hybrid' ? take(biosBootBytes) : undefined;
  const esp = firmware === 'bios' ? undefined : { ...take(espBytes), volumeId: espVolumeId(profile) };
  let apps: AppsVolume | undefined;
  if (profile.disk.appsVolume !== 'none') {
    const noFsck = activeTrims(profile).some((t) => t.id === 'boot-no-fsck');
    const { offset, bytes } = take(Math.floor(parseSize(profile.disk.appsVolume) / mib) * mib);
    apps = { offset, bytes, label: appsVolumeLabel, mountpoint: profile.layout.optVm, fsckPass: noFsck ? 0 : 2 };
  }
  return {
    table: firmware === 'bios' ? 'dos' : 'gpt',
    ...(biosBoot ? { biosBoot } : {}),
    ...(esp ? { esp } : {}),
    ...(apps ? { apps } : {}),
    // GPT keeps a copy of its table in the disk's last 33 sectors; sfdisk ends a partition on a whole MiB.
    root: { offset: next, bytes: firmware === 'bios' ? diskBytes - next : Math.floor((diskBytes - 33 * 512 - next) / mib) * mib },
  };
}

/**
 * Pure: where a bootstrapped base keeps its apps volume, or undefined when it has none (an
 * imported base's layout is not ours; `disk.appsVolume: none`). It sits before the root, so the
 * root is last and can grow with the disk.
 */
export function appsVolumeOf(profile: Pick<Profile, 'os' | 'base' | 'disk' | 'layout' | 'boot'>): AppsVolume | undefined {
  return diskLayoutOf(profile)?.apps;
}

/**
 * Pure: sfdisk's script for the layout, `device` being the disk's name as sfdisk is given it (its
 * partitions are named after it, which is how a GPT line gets its number). MBR: partition 1 the
 * bootable root to the end of the disk, 2 the apps volume before it. GPT: 1 the root, 2 the apps
 * volume, 14 the BIOS boot partition, 15 the ESP, as Debian's cloud images number them.
 */
export function sfdiskScript(layout: DiskLayout, device: string): string {
  const sector = 512;
  const at = (e: Extent) => `start=${e.offset / sector}, size=${e.bytes / sector}`;
  if (layout.table === 'dos') {
    return `label: dos\nstart=${layout.root.offset / sector}, type=83, bootable\n${layout.apps ? `${at(layout.apps)}, type=83\n` : ''}`;
  }
  return [
    'label: gpt',
    `${device}${partitionNumber.root} : ${at(layout.root)}, type=${gptType.linux}, name="root"`,
    ...(layout.apps ? [`${device}${partitionNumber.apps} : ${at(layout.apps)}, type=${gptType.linux}, name="apps"`] : []),
    ...(layout.biosBoot ? [`${device}${partitionNumber.biosBoot} : ${at(layout.biosBoot)}, type=${gptType.biosBoot}, name="bios-boot"`] : []),
    ...(layout.esp ? [`${device}${partitionNumber.esp} : ${at(layout.esp)}, type=${gptType.esp}, name="esp"`] : []),
    '',
  ].join('\n');
}

/**
 * Pure: mkfs.vfat for the ESP inside the raw disk. FAT32, which every UEFI firmware reads, with
 * one sector per cluster: a firmware tells FAT32 by its cluster count (at least 65525), and
 * mkfs.vfat's default for 64 MiB (8 sectors) gives 16 thousand, which OVMF does not take for FAT32
 * and so does not read at all.
 */
export function espMkfsArgs(esp: NonNullable<DiskLayout['esp']>, raw: string): string[] {
  return ['mkfs.vfat', '-F', '32', '-s', '1', '-n', 'EFI', '-i', esp.volumeId.replace('-', ''), '--offset', String(esp.offset / 512), raw, String(esp.bytes / 1024)];
}

/**
 * Pure: the fstab line of the ESP. Mounted when first used (an automount: no vfat mount on the
 * boot's critical chain), by GRUB's and shim's upgrades; `umask=0077`: only root reads it.
 */
export function espFstab(layout: DiskLayout): string {
  return layout.esp ? `UUID=${layout.esp.volumeId} /boot/efi vfat umask=0077,noauto,nofail,x-systemd.automount 0 0\n` : '';
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
/**
 * Pure: the shell that installs GRUB for the firmware, run chrooted in the guestfish appliance
 * (the root mounted, the ESP at /boot/efi). The appliance's own name for the disk varies between
 * runs (sda, sdb): the mounted root says which disk it is on. UEFI: Debian's signed shim and GRUB
 * (`--uefi-secure-boot`) in EFI/debian and at the removable path EFI/BOOT, which a firmware with
 * no boot entries (a fresh OVMF vars file, every job's VM) starts; no NVRAM entry (`--no-nvram`:
 * the appliance has none to write, and the entries would belong to the build's firmware anyway).
 */
export function grubInstallScript(firmware: Firmware): string {
  return [
    'set -e',
    'disk=/dev/$(lsblk -no PKNAME "$(findmnt -no SOURCE /)")',
    ...(firmware === 'uefi' ? [] : ['grub-install --target=i386-pc "$disk"']),
    ...(firmware === 'bios' ? [] : ['grub-install --target=x86_64-efi --efi-directory=/boot/efi --no-nvram --uefi-secure-boot --force-extra-removable']),
    // grub-cloud-amd64 reinstalls both GRUBs on upgrades only with this flag (not set at bootstrap: there is no disk in mmdebstrap's chroot).
    ...(firmware === 'hybrid' ? ['touch /etc/grub.d/enable_cloud'] : []),
    'update-grub',
  ].join('\n');
}

export async function bootstrapBase(ctx: BuildContext, step: Step, output: string, mirrors: string[]): Promise<void> {
  const { profile } = ctx;
  const suite = profile.base.bootstrap!.suite;
  const rootDir = join(ctx.workDir, 'rootfs');
  const raw = join(ctx.workDir, 'base.raw');
  const authFile = join(ctx.workDir, 'mirror-auth.conf');
  await rm(rootDir, { recursive: true, force: true });
  await mkdir(ctx.workDir, { recursive: true, mode: 0o700 });
  const layout = diskLayoutOf(profile)!;
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

    const volume = layout.apps;
    if (volume) {
      // The mount point stays in the root, so the folder is there even if the volume is not.
      await mkdir(join(rootDir, volume.mountpoint), { recursive: true, mode: 0o755 });
      await appendFile(join(rootDir, 'etc', 'fstab'), appsVolumeFstab(volume));
    }
    if (layout.esp) {
      await mkdir(join(rootDir, 'boot', 'efi'), { recursive: true, mode: 0o755 });
      await appendFile(join(rootDir, 'etc', 'fstab'), espFstab(layout));
    }
    step.update('filesystem from the tree (mke2fs -d)');
    const bytes = parseSize(profile.disk.size);
    await run(['truncate', '-s', String(bytes), raw]);
    await run(['sfdisk', '--quiet', raw], { input: sfdiskScript(layout, raw) });
    const fsKiB = Math.floor(layout.root.bytes / 1024);
    await run(['mke2fs', '-q', '-t', 'ext4', '-L', 'rootfs', '-d', rootDir, '-E', `offset=${layout.root.offset},nodiscard`, raw, `${fsKiB}k`], {
      timeoutMs: 10 * 60_000,
    });
    // An empty one: the build VM's commands may install there; the inject stage writes the apps.
    if (volume) await run(['mke2fs', '-q', '-t', 'ext4', '-L', volume.label, '-E', `offset=${volume.offset},nodiscard,root_owner=0:0`, raw, `${volume.bytes / 1024}k`]);
    // The ESP, empty: grub-install fills it below.
    if (layout.esp) await run(espMkfsArgs(layout.esp, raw));
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
    if (layout.esp) await session.call('mount', '/dev/sda15', '/boot/efi');
    await session.call('sh', grubInstallScript(firmwareOf(profile) ?? 'bios'));
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
  const layout = diskLayoutOf(profile)!;
  const volume = layout.apps;
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
    sfdisk: sfdiskScript(layout, 'DISK'),
    appsVolume: volume ? appsVolumeFstab(volume) : null,
    ...(layout.esp ? { esp: [espFstab(layout), espMkfsArgs(layout.esp, 'DISK'), grubInstallScript(firmwareOf(profile) ?? 'bios')] } : {}),
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
