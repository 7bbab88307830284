/** The disks and files a build makes: references, outputs, usage (leaf types: no project imports). */

/** The disk formats guestforge reads and writes (a build's own disks are qcow2 or raw). */
export type DiskFormat = 'qcow2' | 'raw' | 'vmdk';

export interface DiskRef {
  path: string;
  format: 'qcow2' | 'raw';
}

export interface OutputFile {
  path: string;
  format: string;
  bytes: number;
  sha256: string;
}

/** How much of a disk is data: its virtual size, and the bytes that are neither holes nor zeroes. */
export interface DiskUsage {
  virtualBytes: number;
  dataBytes: number;
}

/** A bootstrapped base's apps volume: a partition of its own, mounted at the apps folder. */
export interface AppsVolume {
  /** Byte offset of its partition (the second, first on the disk). */
  offset: number;
  bytes: number;
  label: string;
  /** Where it is mounted: the profile's apps folder. */
  mountpoint: string;
  /** fstab's pass: 2 (checked at boot), or 0 with the boot-no-fsck trim (no systemd-fsck unit at all). */
  fsckPass: 0 | 2;
}

/**
 * The firmware an image boots under: `bios` (SeaBIOS, GRUB in the MBR), `uefi` (OVMF, GRUB
 * behind Debian's signed shim on an EFI system partition), or `hybrid`, one disk for both.
 */
export type Firmware = 'bios' | 'uefi' | 'hybrid';

/** One firmware a VM boots with: SeaBIOS on i440fx, OVMF on q35, OVMF's Secure Boot build with Microsoft's keys enrolled. */
export type BootFirmware = 'bios' | 'uefi' | 'uefi-secure';

/** A partition of a bootstrapped disk, in bytes (whole MiB). */
export interface Extent {
  offset: number;
  bytes: number;
}

/**
 * Where a bootstrapped disk's partitions lie. MBR for `bios`: the root (1) last, the apps volume
 * (2) first. GPT otherwise, with the numbers Debian's cloud images use: a BIOS boot partition (14,
 * hybrid only) for GRUB's core, the EFI system partition (15), then the apps volume (2) and the
 * root (1), still last so that it can grow with the disk.
 */
export interface DiskLayout {
  table: 'dos' | 'gpt';
  biosBoot?: Extent;
  esp?: Extent & { /** The FAT volume id, as fstab names it (XXXX-XXXX). */ volumeId: string };
  apps?: AppsVolume;
  root: Extent;
}

/** GPT partition type GUIDs (sfdisk's names differ between versions: the GUIDs do not); the bootstrap writes them, verify reads them. */
export const gptType = {
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  biosBoot: '21686148-6449-6E6F-744E-656564454649',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
} as const;

/** The partition numbers of a bootstrapped disk (Debian's cloud images number the boot partitions 14 and 15). */
export const partitionNumber = { root: 1, apps: 2, biosBoot: 14, esp: 15 } as const;
