/**
 * Pure argv builders for qemu-system-x86_64 (mkosi's finalize_* style), so
 * the exact command line is unit-tested without running qemu.
 */
import type { Accel } from './accel.ts';
import { qemuAccelArgs } from './accel.ts';
import { shellQuote } from '../util/quote.ts';
import type { UefiFirmware } from './firmware.ts';

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
  /**
   * Guest connections to address:port run `command` (slirp spawns it per
   * connection, the connection as its stdin and stdout): the rehearsal's NFS
   * server, which listens on no host address.
   */
  guestForwards?: { address: string; port: number; command: string[] }[];
  /**
   * The guest reaches nothing outside but what `guestForwards` names (a
   * rehearsal's NFS server and mirrors), and not the host's loopback services
   * at 10.0.2.2 (slirp `restrict=on`; the host forward still works).
   * For VMs that check an image (smoke, rehearse), not ones that install (build).
   */
  isolated?: boolean;
  /** Attach the seed as a raw virtio disk instead of a cdrom (vTorque). */
  seedAsDisk?: boolean;
  /** Machine type (default pc, the newest i440fx) and CPU model (default: the accelerator's). */
  machine?: string;
  cpuModel?: string;
  /**
   * A second NIC on a segment shared with other VMs (a multi-node rehearsal):
   * its -netdev (id net1; qemu's own dgram/socket over 127.0.0.1) and MAC.
   * The user NIC then gets a fixed MAC too, so the guest can tell them apart.
   */
  privateNic?: { netdev: string; mac: string; userMac: string };
  /**
   * The serial console on this unix socket too (a server; the log file still
   * gets every byte): a VM that may be kept for `guestforge console`.
   */
  consoleSocket?: string;
  /** OVMF instead of SeaBIOS (vm/firmware.ts prepares it: a fresh vars file per VM); `machine` must be q35. */
  uefi?: UefiFirmware;
  /** Boot this kernel with this command line instead of the disk's boot sector (OSv's ZFS builder). */
  kernel?: { path: string; append: string };
}

/** A value inside a qemu -opt list: a comma is written twice, or it would start the next option. */
export function qemuOptValue(value: string): string {
  return value.replaceAll(',', ',,');
}

export function driveArgs(spec: VmSpec): string[] {
  const cache = spec.unsafeCache ? 'unsafe' : 'writeback';
  const args = ['-drive', `file=${qemuOptValue(spec.disk)},format=${spec.diskFormat},if=virtio,cache=${cache},discard=unmap`];
  if (spec.seedIso && spec.seedAsDisk) args.push('-drive', `file=${qemuOptValue(spec.seedIso)},format=raw,if=virtio,readonly=on`);
  else if (spec.seedIso) args.push('-drive', `file=${qemuOptValue(spec.seedIso)},format=raw,media=cdrom,readonly=on`);
  return args;
}

export function netdevArg(spec: Pick<VmSpec, 'hostForward' | 'isolated' | 'guestForwards'>): string {
  return [
    'user,id=net0',
    ...(spec.isolated ? ['restrict=on'] : []),
    ...(spec.hostForward ? [`hostfwd=tcp:127.0.0.1:${spec.hostForward.hostPort}-:${spec.hostForward.guestPort}`] : []),
    // libslirp splits the command as a shell would (g_shell_parse_argv): quoted by the one helper.
    ...(spec.guestForwards ?? []).map((f) => `guestfwd=tcp:${f.address}:${f.port}-cmd:${qemuOptValue(shellQuote(f.command))}`),
  ].join(',');
}

/**
 * Pure: OVMF's two flash drives, code read-only and the VM's own vars. Secure Boot: SMM on, and
 * the flash writable only from SMM, or the guest could replace the enrolled keys.
 */
export function firmwareArgs(uefi: UefiFirmware | undefined): string[] {
  if (!uefi) return [];
  return [
    ...(uefi.secure ? ['-global', 'driver=cfi.pflash01,property=secure,value=on'] : []),
    '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${qemuOptValue(uefi.code)}`,
    '-drive', `if=pflash,format=raw,unit=1,file=${qemuOptValue(uefi.vars)}`,
  ];
}

export function qemuArgs(spec: VmSpec): string[] {
  const machine = spec.machine ?? (spec.uefi ? 'q35' : 'pc');
  return [
    'qemu-system-x86_64',
    '-machine', spec.uefi?.secure ? `${machine},smm=on` : machine,
    ...firmwareArgs(spec.uefi),
    ...qemuAccelArgs(spec.accel, spec.cpuModel),
    '-smp', String(spec.cpus),
    '-m', String(spec.memoryMiB),
    '-nodefaults',
    '-display', 'none',
    '-vga', 'none',
    ...(spec.allowReboot ? [] : ['-no-reboot']),
    ...(spec.kernel ? ['-kernel', spec.kernel.path, '-append', spec.kernel.append] : []),
    ...driveArgs(spec),
    '-netdev', netdevArg(spec),
    '-device', `virtio-net-pci,netdev=net0${spec.privateNic ? `,mac=${spec.privateNic.userMac}` : ''}`,
    ...(spec.privateNic ? ['-netdev', spec.privateNic.netdev, '-device', `virtio-net-pci,netdev=net1,mac=${spec.privateNic.mac}`] : []),
    '-device', 'virtio-rng-pci',
    '-chardev', spec.consoleSocket
      ? `socket,id=serial0,path=${qemuOptValue(spec.consoleSocket)},server=on,wait=off,logfile=${qemuOptValue(spec.serialLog)}`
      : `file,id=serial0,path=${qemuOptValue(spec.serialLog)}`,
    '-serial', 'chardev:serial0',
    '-qmp', `unix:${qemuOptValue(spec.qmpSocket)},server=on,wait=off`,
  ];
}
