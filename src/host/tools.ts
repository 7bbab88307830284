/**
 * Every external program guestforge runs, with the Debian package that ships
 * it and how to ask its version. `doctor` prints this table; the exec module
 * uses it to turn "not found" into an install hint.
 */
import type { ToolInfo } from './tool-info.ts';

export type { ToolInfo } from './tool-info.ts';

export const tools = {
  'qemu-system-x86_64': { apt: 'qemu-system-x86', versionArgs: ['--version'], usedBy: 'build, smoke, rehearse' },
  virsh: { apt: 'libvirt-clients', versionArgs: ['--version'], usedBy: 'build --backend libvirt' },
  'qemu-img': { apt: 'qemu-utils', versionArgs: ['--version'], usedBy: 'build, verify' },
  guestfish: { apt: 'libguestfs-tools', versionArgs: ['--version'], usedBy: 'build, verify' },
  xorriso: { apt: 'xorriso', versionArgs: ['-version'], usedBy: 'build, smoke, seed' },
  mmdebstrap: { apt: 'mmdebstrap', versionArgs: ['--version'], usedBy: 'build (bootstrap)' },
  sfdisk: { apt: 'fdisk', versionArgs: ['--version'], usedBy: 'build (bootstrap)' },
  mke2fs: { apt: 'e2fsprogs', versionArgs: ['-V'], usedBy: 'build (bootstrap)' },
  'mkfs.vfat': { apt: 'dosfstools', versionArgs: ['--help'], usedBy: 'build (bootstrap: the EFI system partition of uefi and hybrid disks)' },
  rpm: { apt: 'rpm', versionArgs: ['--version'], usedBy: 'verify (reads RedHat images\' rpm database)' },
  mksquashfs: { apt: 'squashfs-tools', versionArgs: ['-version'], usedBy: 'build (squashfs output)' },
  cpio: { apt: 'cpio', versionArgs: ['--version'], usedBy: 'build (osv)' },
  gpg: { apt: 'gnupg', versionArgs: ['--version'], usedBy: 'sign, verify-signature, build --sign-key' },
  skopeo: { apt: 'skopeo', versionArgs: ['--version'], usedBy: 'push' },
  capstan: { apt: 'not in Debian: build it from github.com/cloudius-systems/capstan', versionArgs: ['--version'], usedBy: 'build (osv), optional', optional: true },
} as const satisfies Record<string, ToolInfo>;

/** The programs whose versions a build's manifest records (mmdebstrap when it bootstraps), with the table's version arguments. */
export function manifestTools(bootstraps: boolean): string[][] {
  const names: (keyof typeof tools)[] = ['qemu-img', 'qemu-system-x86_64', 'guestfish', 'xorriso', ...(bootstraps ? ['mmdebstrap' as const] : [])];
  return names.map((name) => [name, ...tools[name].versionArgs]);
}

export function aptPackageFor(program: string): string | undefined {
  return (tools as Record<string, ToolInfo>)[program]?.apt;
}
