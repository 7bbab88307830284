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
