/** What verify reads from a guest (verify/facts.ts gathers it in one read-only guestfish session): leaf types. */

export interface PasswdEntry {
  name: string;
  uid: number;
  home: string;
  shell: string;
}

export interface PathFacts {
  exists: boolean;
  isDir: boolean;
  mode?: number;
  entries?: string[];
}

/** Architecture, source package and license as the package database gives them (dpkg has no license field). */
export interface PackageDetail {
  arch?: string;
  source?: string;
  license?: string;
}

/** A small file's size and its first bytes (never more: images are hostile). */
export interface FileHead {
  bytes: number;
  head: string;
}

/** What is mounted at the apps folder (the seal stage reads it for the inject stage's fast path). */
export interface AppsFolderMount {
  label: string;
  /** The filesystem's UUID (a fresh apps volume keeps it, for an fstab that names it so). */
  uuid?: string;
  /** Another partition of the disk overlaps this one. */
  overlapped?: boolean;
  /** When it is a partition: its number and where it lies on its disk, in bytes. */
  partnum?: number;
  start?: number;
  size?: number;
  /** The mounted filesystem's top folder. */
  mode?: number;
  uid?: number;
  gid?: number;
}

export interface GuestFacts {
  /** Set by the seal stage: undefined when nothing is mounted at the apps folder. */
  appsFolderMount?: AppsFolderMount;
  osRelease: Record<string, string>;
  /** name → version, from dpkg's status file or the rpm database. */
  packages: Map<string, string>;
  /** What the package database says besides the version, for the SBOM (older cache entries have none). */
  packageDetails?: Record<string, PackageDetail>;
  packageSource: 'dpkg' | 'rpm' | 'none';
  /** cloud.cfg then cloud.cfg.d/*.cfg in cloud-init's (sorted) order. */
  cloudConfigs: { path: string; text: string }[];
  paths: Record<string, PathFacts>;
  passwd: PasswdEntry[];
  /** How each account's password stands as pam_unix reads passwd and shadow (never the hash itself). */
  passwords: Record<string, PasswordState>;
  /** /etc/machine-id when it is a file: its size and its first 64 bytes. */
  machineId?: FileHead;
  /** /var/lib/dbus/machine-id when it is a regular file (not the usual link to /etc/machine-id). */
  dbusMachineId?: FileHead;
  /** /etc/ssh/sshd_config, then sshd_config.d/*.conf (sorted). */
  sshdConfigs: { path: string; text: string }[];
  sshHostKeys: string[];
  cloudInstances: string[];
  kernels: string[];
  /** kernel version → rdma_rxe module files found. */
  rxeModules: Record<string, string[]>;
  modulesLoad: { path: string; text: string }[];
  systemdUnits: string[];
  /** /etc/cloud/cloud-init.disabled and the like: files whose presence stops cloud-init. */
  cloudInitDisabledBy?: string[];
  /** /etc/cloud/ds-identify.cfg, when there is one. */
  dsIdentify?: { path: string; text: string };
  /** Kernel command lines the boot loader passes, each with the file it was read from. */
  kernelCmdlines?: { path: string; cmdline: string }[];
  /** What verify did not read (over a limit, through a loop of links): verify.complete fails on it. */
  unread?: Unread[];
  /** Each /boot/vmlinuz-<version>'s PE facts (a kernel that is no PE file cannot be started by shim; an unsigned one not under Secure Boot). */
  kernelPe?: Record<string, PeFacts>;
  /** Which firmwares can boot the disk (read last in a session: it mounts the ESP); absent in facts from before it was read. */
  boot?: BootFacts;
}

/** `duplicate`: the name is on two lines of passwd or shadow, and which one counts depends on who reads. */
export type PasswordState = 'empty' | 'locked' | 'usable' | 'duplicate';

/** A path verify did not read, and why: verify.complete fails naming it. */
export interface Unread {
  path: string;
  why: string;
}

/** What a PE file's headers say (verify/boot.ts peFacts). */
export interface PeFacts {
  pe: boolean;
  /** Machine AMD64: what an x86-64 UEFI runs. */
  x64: boolean;
  /** Its Authenticode certificate table is not empty (whose signature, only a firmware with the keys tells). */
  signed: boolean;
}

/** What the disk says about the firmwares that can boot it (verify/boot.ts gathers it). */
export interface BootFacts {
  /** libguestfs's name of the partition table: msdos, gpt, or none. */
  table: string;
  /** The first sector's boot code: GRUB's boot.img, another loader's, or zeroes. */
  mbrCode: 'grub' | 'other' | 'none';
  /** GPT: the BIOS boot partition, and whether GRUB's core is in it (its first sector is not zeroes). */
  biosBoot?: { partnum: number; core: boolean };
  /** The EFI system partition: its loaders (EFI/<folder>/<name>.efi) with their PE facts. */
  esp?: { partnum: number; fsType: string; readable: boolean; loaders: Record<string, PeFacts> };
}
