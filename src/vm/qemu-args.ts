/**
 * Pure argv builders for qemu-system-x86_64 (mkosi's finalize_* style), so
 * the exact command line is unit-tested without running qemu.
 */
import type { Accel } from './accel.ts';
import { qemuAccelArgs } from './accel.ts';

export interface VmSpec {
  disk: string;
  diskFormat: 'qcow2' | 'raw';
  seedIso?: string;
  memoryMiB: number;
  cpus: number;
  accel: Accel;
  serialLog: string;
  qmpSocket: string;
  /** A throwaway overlay may skip flushes; a disk we keep may not. */
  unsafeCache: boolean;
  /**
   * Let the guest reboot (an SELinux autorelabel reboots once). Off, a
   * reboot ends qemu, so a guest that panics and reboots cannot loop.
   */
  allowReboot?: boolean;
  /** Forward a loopback host port to a guest port (OSv's upload daemon, SSH). */
  hostForward?: { hostPort: number; guestPort: number };
  /** Attach the seed as a raw virtio disk instead of a cdrom (vTorque). */
  seedAsDisk?: boolean;
  /** Machine type (default pc, the newest i440fx) and CPU model (default: the accelerator's). */
  machine?: string;
  cpuModel?: string;
}

export function driveArgs(spec: VmSpec): string[] {
  const cache = spec.unsafeCache ? 'unsafe' : 'writeback';
  const args = ['-drive', `file=${spec.disk},format=${spec.diskFormat},if=virtio,cache=${cache},discard=unmap`];
  if (spec.seedIso && spec.seedAsDisk) args.push('-drive', `file=${spec.seedIso},format=raw,if=virtio,readonly=on`);
  else if (spec.seedIso) args.push('-drive', `file=${spec.seedIso},format=raw,media=cdrom,readonly=on`);
  return args;
}

export function qemuArgs(spec: VmSpec): string[] {
  return [
    'qemu-system-x86_64',
    '-machine', spec.machine ?? 'pc',
    ...qemuAccelArgs(spec.accel, spec.cpuModel),
    '-smp', String(spec.cpus),
    '-m', String(spec.memoryMiB),
    '-nodefaults',
    '-display', 'none',
    '-vga', 'none',
    ...(spec.allowReboot ? [] : ['-no-reboot']),
    ...driveArgs(spec),
    '-netdev', spec.hostForward ? `user,id=net0,hostfwd=tcp:127.0.0.1:${spec.hostForward.hostPort}-:${spec.hostForward.guestPort}` : 'user,id=net0',
    '-device', 'virtio-net-pci,netdev=net0',
    '-device', 'virtio-rng-pci',
    '-chardev', `file,id=serial0,path=${spec.serialLog}`,
    '-serial', 'chardev:serial0',
    '-qmp', `unix:${spec.qmpSocket},server=on,wait=off`,
  ];
}
