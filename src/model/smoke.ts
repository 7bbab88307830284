/** What a smoke boot reports: its verdict, the guest's check lines and where the boot's time went (leaf types). */

export interface CheckLine {
  id: string;
  status: 'pass' | 'fail' | 'warn';
  detail: string;
}

/** When GRUB's "Loading Linux" and "Loading initial ramdisk" lines were first seen, from qemu's start (vm/watch.ts). */
export interface BootLoaderMarks { kernelMs?: number; initrdMs?: number }

/** Where a smoke boot's time went, from the guest's GUESTFORGE-TIMING lines (smoke/boot-timing.ts parses them). */
export interface BootTiming {
  /** Host: from qemu's start to the kernel's (firmware, boot loader), i.e. time to result minus the guest's uptime. */
  beforeKernelMs?: number;
  /**
   * That time split at GRUB's console lines (absent when GRUB printed none): qemu's start to
   * "Loading Linux" (the firmware, GRUB's core, modules, config and menu), then to "Loading initial
   * ramdisk" (GRUB reading the kernel through the firmware), then to the kernel's clock (GRUB
   * reading the initramfs, the kernel unpacking itself). To the watcher's half-second poll.
   */
  beforeKernel?: { firmwareMs: number; kernelReadMs?: number; initrdReadMs?: number };
  /** Kernel start to the initramfs's start, or to userspace when there is none. */
  kernelMs?: number;
  initrdMs?: number;
  /** Userspace start (systemd in the root file system) to the guest's report. */
  userspaceMs?: number;
  /** The slowest units as systemd-analyze blame lists them. */
  units: { unit: string; ms: number }[];
  /** cloud-init's stages (the last one up to the report). */
  cloudInit: { stage: string; ms: number }[];
  /**
   * The critical chain to cloud-config.service, the unit first (cloud-final, still running
   * when the report is made, follows it): when each unit became active and how long it took.
   */
  chain: { unit: string; atMs?: number; ms?: number }[];
}

export interface SmokeReport {
  ok: boolean;
  detail: string;
  checks: CheckLine[];
  warnings: string[];
  bootMs?: number;
  /** Where the boot's time went (Linux smoke only). */
  boot?: BootTiming;
  serialLog: string;
  /** The guest's systemd-analyze plot (SVG) beside the console log, when it sent one that passed the check. */
  bootPlot?: string;
  /** The firmware it booted under (absent: SeaBIOS, from before the firmware was chosen). */
  firmware?: 'bios' | 'uefi' | 'uefi-secure';
  /** The disk's virtual size in this boot, when it was grown first (as a cluster enlarges the copy it boots). */
  grownToBytes?: number;
}
