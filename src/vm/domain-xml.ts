/** A libvirt domain's XML, from the template in qemu/ with every value escaped; pure, so it is unit-tested (and checked by virt-xml-validate). */
import { readShipped } from '../util/project.ts';
import type { Accel } from './accel.ts';

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

export interface DomainDisk {
  path: string;
  format: 'qcow2' | 'raw';
  cdrom?: boolean;
}

export interface DomainFields {
  name: string;
  label: string;
  accel: Accel;
  memoryMiB: number;
  cpus: number;
  disks: DomainDisk[];
  serialPath: string;
  unsafeCache: boolean;
  allowReboot: boolean;
  /** Local runs: qemu runs as this uid:gid (the files are the caller's). */
  runAs?: { uid: number; gid: number };
  /** The machine type (default pc). */
  machine?: string;
  /** UEFI through libvirt's firmware auto-selection; `secure`: Secure Boot with Microsoft's keys enrolled (SMM on). */
  uefi?: { secure: boolean };
}

function diskXml(disk: DomainDisk, index: number, unsafeCache: boolean, q35: boolean): string {
  const source = `<source file='${escapeXml(disk.path)}'/>`;
  if (disk.cdrom) {
    // q35 has no IDE bus: its CD drive hangs off the AHCI controller.
    const target = q35 ? "<target dev='sdc' bus='sata'/>" : "<target dev='hdc' bus='ide'/>";
    return `    <disk type='file' device='cdrom'>\n      <driver name='qemu' type='raw'/>\n      ${source}\n      ${target}\n      <readonly/>\n    </disk>`;
  }
  const cache = unsafeCache ? 'unsafe' : 'writeback';
  return `    <disk type='file' device='disk'>\n      <driver name='qemu' type='${disk.format}' cache='${cache}' discard='unmap'/>\n      ${source}\n      <target dev='vd${String.fromCharCode(97 + index)}' bus='virtio'/>\n    </disk>`;
}

/** The domain XML from the template in qemu/; pure, so it is unit-tested. */
export async function domainXml(fields: DomainFields): Promise<string> {
  const template = await readShipped('qemu', 'libvirt-domain.xml');
  const machine = fields.machine ?? 'pc';
  const q35 = /q35/.test(machine);
  const values: Record<string, string> = {
    type: fields.accel === 'kvm' ? 'kvm' : 'qemu',
    name: escapeXml(fields.name),
    label: escapeXml(fields.label),
    memoryMiB: String(fields.memoryMiB),
    cpus: String(fields.cpus),
    // TCG gets every feature qemu can emulate (-cpu max); KVM the host's CPU.
    cpu: fields.accel === 'kvm' ? "<cpu mode='host-passthrough'/>" : "<cpu mode='maximum' check='none'/>",
    onReboot: fields.allowReboot ? 'restart' : 'destroy',
    disks: fields.disks.filter((d) => !d.cdrom).map((d, i) => diskXml(d, i, fields.unsafeCache, q35))
      .concat(fields.disks.filter((d) => d.cdrom).map((d, i) => diskXml(d, i, fields.unsafeCache, q35))).join('\n'),
    machine: escapeXml(machine),
    osFirmware: fields.uefi ? " firmware='efi'" : '',
    // Auto-selection: the descriptor with Secure Boot and enrolled keys, or one without Secure Boot.
    firmware: fields.uefi
      ? `\n    <firmware>\n      <feature enabled='${fields.uefi.secure ? 'yes' : 'no'}' name='secure-boot'/>\n      <feature enabled='${fields.uefi.secure ? 'yes' : 'no'}' name='enrolled-keys'/>\n    </firmware>`
      : '',
    smm: fields.uefi?.secure ? "\n    <smm state='on'/>" : '',
    serialPath: escapeXml(fields.serialPath),
    seclabel: fields.runAs
      ? `<seclabel type='static' model='dac' relabel='no'>\n    <label>+${fields.runAs.uid}:+${fields.runAs.gid}</label>\n  </seclabel>`
      : '',
  };
  const xml = template.replace(/^<!--[\s\S]*?-->\n/, '').replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`qemu/libvirt-domain.xml: unknown field {{${key}}}`);
    return value;
  });
  return xml;
}
