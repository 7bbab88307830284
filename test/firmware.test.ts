/**
 * Firmware (issue 36), all that needs no VM: which firmwares a profile claims and which boots
 * prove it, the profile's and cluster's refusals, qemu's and libvirt's firmware arguments (the
 * domain XML checked by the real virt-xml-validate), OVMF's files from the real ovmf package,
 * what verify reads from PE headers and boot sectors, the smoke checks' inputs, and the
 * manifest's record. The boots themselves are in e2e.test.ts (SeaBIOS, then OVMF with Secure
 * Boot, each on a disk grown by 2 GiB) and rehearse.test.ts (OVMF on q35).
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { fakePe } from './helpers/tree-image.ts';
import { loadProfileOrThrow } from '../src/loader/index.ts';
import { loadClusterOrThrow } from '../src/cluster/load.ts';
import { clusterMachine } from '../src/cluster/schema.ts';
import { bootFirmwares, firmwareOf } from '../src/policy/firmware.ts';
import { firmwareArgs, qemuArgs, type VmSpec } from '../src/vm/qemu-args.ts';
import { machineFor, ovmfFiles, prepareFirmware } from '../src/vm/firmware.ts';
import { domainXml } from '../src/vm/domain-xml.ts';
import { bootCodeOf, peFacts } from '../src/verify/boot.ts';
import { firmwareSupport } from '../src/verify/rules.ts';
import { mergeReports, smokeFirmwares, smokeGrowth } from '../src/smoke/run.ts';
import { smokeUserData } from '../src/cloudinit/userdata.ts';
import { diskLayoutOf } from '../src/os/debian/bootstrap.ts';
import { firmwareRecord } from '../src/stages/finalize.ts';
import { defaultLayout } from '../src/profile/schema.ts';
import { run } from '../src/exec/run.ts';
import type { SmokeReport } from '../src/model/smoke.ts';

const root = join(import.meta.dirname, '..');
const tmp = await mkdtemp(join(tmpdir(), 'gf-firmware-'));
const t = timed(suite('firmware: claims, refusals, arguments, what the disk says'));
const load = async (name: string) => (await loadProfileOrThrow(join(root, 'profiles', name))).profile;

async function refused(yaml: string): Promise<string> {
  const file = join(tmp, 'p.yaml');
  await writeFile(file, yaml);
  try {
    await loadProfileOrThrow(file);
  } catch (error) {
    const e = error as Error & { hint?: string };
    return `${e.message}\n${e.hint ?? ''}`;
  }
  throw new Error(`accepted:\n${yaml}`);
}

const debianBase = 'name: t\nos: { family: debian, release: "13" }\nbase: { bootstrap: { suite: trixie } }\n';

t('what each profile claims, and the boots that prove it: bootstrapped Debian hybrid by default, OSv BIOS, an imported image only what it says', async () => {
  const d13 = await load('debian-13-hpc.yaml');
  assert.is(firmwareOf(d13), 'hybrid');
  assert.is(d13.disk.secureBoot, true, 'the default profile proves Secure Boot with Debian\'s signed chain');
  assert.equal(smokeFirmwares(d13), ['bios', 'uefi-secure']);
  assert.is(firmwareOf(await load('debian-12-hpc.yaml')), 'hybrid');
  assert.equal(smokeFirmwares(await load('debian-12-hpc.yaml')), ['bios', 'uefi']);
  assert.is(firmwareOf(await load('osv-hello.yaml')), 'bios');
  assert.is(firmwareOf(await load('rocky-9-hpc.yaml')), 'hybrid', 'Rocky\'s GenericCloud image boots under both: the profile says so, verify checks it');
  const { disk: _, ...imported } = await load('rocky-9-hpc.yaml');
  assert.is(firmwareOf({ ...imported, disk: { secureBoot: false } }), undefined, 'no claim: verify states what it finds, smoke boots SeaBIOS');
  assert.equal(bootFirmwares('uefi', false), ['uefi']);
  assert.equal(bootFirmwares('bios', true), ['bios']);
});

t('refused with the field: Secure Boot without UEFI, UEFI for OSv, an unknown firmware', async () => {
  assert.match(await refused(`${debianBase}disk: { firmware: bios, secureBoot: true }\n`), /disk\.secureBoot[\s\S]*Secure Boot is a UEFI feature, and this image boots under BIOS only[\s\S]*set disk.firmware to hybrid or uefi/);
  assert.match(await refused(`name: t\nos: { family: osv, runtime: native }\nbase: { image: { path: x.qcow2, sha256: "${'0'.repeat(64)}" } }\ndisk: { firmware: uefi }\n`), /disk\.firmware[\s\S]*osv images boot under bios only, not uefi: OSv's loader is a BIOS boot sector/);
  assert.match(await refused(`${debianBase}disk: { firmware: efi }\n`), /disk\.firmware[\s\S]*bios.*uefi.*hybrid/);
});

t('the cluster\'s vm.firmware and vm.machine: q35 by default for OVMF, Secure Boot refused on i440fx', async () => {
  const file = join(tmp, 'c.yaml');
  await writeFile(file, 'name: c\nvm: { firmware: uefi-secure }\n');
  const c = await loadClusterOrThrow(file);
  assert.is(clusterMachine(c), 'q35');
  assert.is(clusterMachine(await loadClusterOrThrow()), 'pc', 'vTorque: SeaBIOS on i440fx');
  await writeFile(file, 'name: c\nvm: { firmware: uefi-secure, machine: pc-i440fx-7.2 }\n');
  const error = await loadClusterOrThrow(file).then(() => undefined, (e: Error & { hint?: string }) => `${e.message}\n${e.hint ?? ''}`);
  assert.match(error ?? 'accepted', /vm\.machine[\s\S]*pc-i440fx-7\.2 has no SMM, which OVMF's Secure Boot build needs/);
});

const spec: VmSpec = { disk: '/d.qcow2', diskFormat: 'qcow2', memoryMiB: 1024, cpus: 2, accel: 'tcg', serialLog: '/s.log', qmpSocket: '/q.sock', unsafeCache: true };

t('qemu: OVMF as two flash drives (code read-only, the VM\'s own vars) on q35; Secure Boot adds SMM and locks the flash to it; SeaBIOS adds nothing', () => {
  assert.equal(firmwareArgs(undefined), []);
  const plain = qemuArgs({ ...spec, uefi: { code: '/c.fd', vars: '/w/v,1.fd', secure: false } });
  assert.equal(plain.slice(1, 3), ['-machine', 'q35']);
  assert.ok(plain.includes('if=pflash,format=raw,unit=0,readonly=on,file=/c.fd'));
  assert.ok(plain.includes('if=pflash,format=raw,unit=1,file=/w/v,,1.fd'), 'a comma in the vars path is doubled');
  assert.not.ok(plain.includes('driver=cfi.pflash01,property=secure,value=on'));
  const secure = qemuArgs({ ...spec, uefi: { code: '/c.fd', vars: '/v.fd', secure: true } });
  assert.equal(secure.slice(1, 3), ['-machine', 'q35,smm=on']);
  assert.ok(secure.includes('driver=cfi.pflash01,property=secure,value=on'));
  assert.equal(qemuArgs(spec).slice(1, 3), ['-machine', 'pc']);
  assert.equal(qemuArgs({ ...spec, machine: 'pc-q35-7.2', uefi: { code: '/c.fd', vars: '/v.fd', secure: true } }).slice(1, 3), ['-machine', 'pc-q35-7.2,smm=on'], 'the cluster\'s machine kept');
  assert.is(machineFor('bios'), 'pc');
  assert.is(machineFor('uefi-secure'), 'q35');
});

t('OVMF from Debian\'s ovmf package: the 4 MiB builds, Microsoft\'s keys for Secure Boot, a fresh owner-only vars copy per VM, a clear error without the package', async () => {
  assert.equal(ovmfFiles('bios'), undefined);
  assert.equal(ovmfFiles('uefi-secure'), { code: '/usr/share/OVMF/OVMF_CODE_4M.ms.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd' });
  const vars = join(tmp, 'vars.fd');
  const firmware = await prepareFirmware('uefi-secure', vars);
  assert.equal(firmware, { code: '/usr/share/OVMF/OVMF_CODE_4M.ms.fd', vars, secure: true });
  const st = await stat(vars);
  assert.is(st.mode & 0o777, 0o600);
  assert.is(st.size, (await stat('/usr/share/OVMF/OVMF_VARS_4M.ms.fd')).size);
  const missing = await prepareFirmware('uefi', join(tmp, 'v2.fd'), join(tmp, 'no-ovmf')).then(() => 'resolved', (e: Error & { hint?: string }) => `${e.message}\n${e.hint}`);
  assert.match(missing, /no OVMF firmware at .*OVMF_CODE_4M\.fd: a UEFI boot needs Debian's ovmf package\napt-get install ovmf/);
});

t('libvirt: firmware=\'efi\' auto-selection with Secure Boot and enrolled keys, SMM, q35 with the seed on SATA; valid by virt-xml-validate', async () => {
  const base = { name: 'gf-x', label: 'smoke', accel: 'tcg' as const, memoryMiB: 1024, cpus: 2, disks: [{ path: '/d.qcow2', format: 'qcow2' as const }, { path: '/s.iso', format: 'raw' as const, cdrom: true }], serialPath: '/s.log', unsafeCache: true, allowReboot: false };
  const secure = await domainXml({ ...base, machine: 'q35', uefi: { secure: true } });
  assert.match(secure, /<os firmware='efi'>\n    <type arch='x86_64' machine='q35'>hvm<\/type>\n    <firmware>\n      <feature enabled='yes' name='secure-boot'\/>\n      <feature enabled='yes' name='enrolled-keys'\/>/);
  assert.match(secure, /<smm state='on'\/>/);
  assert.match(secure, /<target dev='sdc' bus='sata'\/>/);
  const plain = await domainXml({ ...base, machine: 'q35', uefi: { secure: false } });
  assert.match(plain, /<feature enabled='no' name='secure-boot'\/>/);
  assert.not.match(plain, /smm/);
  const bios = await domainXml(base);
  assert.match(bios, /<os>\n    <type arch='x86_64' machine='pc'>hvm<\/type>\n    <boot dev='hd'\/>/);
  assert.match(bios, /bus='ide'/);
  for (const [name, xml] of Object.entries({ secure, plain, bios })) {
    const file = join(tmp, `${name}.xml`);
    await writeFile(file, xml);
    const r = await run(['virt-xml-validate', file, 'domain'], { allowFailure: true });
    assert.is(r.exitCode, 0, `${name}: ${r.stderr}`);
  }
});

t('PE headers as verify reads them: signed or not, x86-64 or not, not a PE at all; boot sectors: GRUB, another loader, zeroes', () => {
  assert.equal(peFacts(new Uint8Array(fakePe(true))), { pe: true, x64: true, signed: true });
  assert.equal(peFacts(new Uint8Array(fakePe(false))), { pe: true, x64: true, signed: false });
  assert.equal(peFacts(new Uint8Array(fakePe(true, 0xaa64))), { pe: true, x64: false, signed: true });
  assert.equal(peFacts(new TextEncoder().encode('#!/bin/sh\necho not a loader\n'.padEnd(200, ' '))), { pe: false, x64: false, signed: false });
  const hostile = fakePe(true);
  hostile.writeUInt32LE(0xfffffff0, 0x3c);
  assert.equal(peFacts(new Uint8Array(hostile)), { pe: false, x64: false, signed: false }, 'a header offset past the bytes read is no PE, not a crash');
  const few = fakePe(true);
  few.writeUInt32LE(4, 0x98 + 108);
  assert.equal(peFacts(new Uint8Array(few)), { pe: true, x64: true, signed: false }, 'fewer than 5 data directories: no certificate table, whatever the bytes after them say');
  const magic = fakePe(true);
  magic.writeUInt16LE(0x1234, 0x98);
  assert.equal(peFacts(new Uint8Array(magic)), { pe: false, x64: false, signed: false }, 'an optional header of neither PE32 nor PE32+');
  assert.is(bootCodeOf(new Uint8Array(512)), 'none');
  const grub = Buffer.alloc(512, 0x90);
  grub.write('GRUB ', 0x180, 'latin1');
  assert.is(bootCodeOf(new Uint8Array(grub)), 'grub');
  assert.is(bootCodeOf(new Uint8Array(Buffer.alloc(512, 0x90))), 'other');
  const loader = { pe: true, x64: true, signed: true };
  assert.equal(firmwareSupport({ table: 'gpt', mbrCode: 'grub' }), {}, 'GRUB\'s boot code on GPT without a core to load boots nothing');
  assert.equal(firmwareSupport({ table: 'gpt', mbrCode: 'grub', biosBoot: { partnum: 14, core: true }, esp: { partnum: 15, fsType: 'vfat', readable: true, loaders: { 'EFI/BOOT/BOOTX64.EFI': loader, 'EFI/BOOT/grubx64.efi': loader } } }), {
    bios: 'GRUB\'s boot code in the first sector, its core in BIOS boot partition 14',
    uefi: 'EFI/BOOT/BOOTX64.EFI on ESP partition 15, signed, with grubx64.efi beside it (shim)',
  });
  assert.equal(firmwareSupport({ table: 'gpt', mbrCode: 'none', esp: { partnum: 1, fsType: 'vfat', readable: true, loaders: { 'EFI/debian/grubx64.efi': loader } } }), {}, 'a vendor folder only needs a boot entry a fresh VM does not have');
  assert.equal(firmwareSupport({ table: 'gpt', mbrCode: 'none', esp: { partnum: 1, fsType: 'vfat', readable: true, loaders: { 'EFI/BOOT/BOOTX64.EFI': { ...loader, x64: false } } } }), {}, 'an arm64 loader does not boot on x86-64');
  assert.equal(firmwareSupport({ table: 'gpt', mbrCode: 'none', esp: { partnum: 1, fsType: 'ext4', readable: true, loaders: { 'EFI/BOOT/BOOTX64.EFI': loader } } }), {}, 'a firmware reads FAT only');
});

t('the smoke checks get the firmware and the grown disk; the partitions before the root must not move', async () => {
  const d13 = await load('debian-13-hpc.yaml');
  const grow = smokeGrowth(diskLayoutOf(d13))!;
  assert.is(grow.bytes, 2 * 1024 ** 3);
  assert.equal(grow.keep.map((k) => k.partnum), [2, 14, 15]);
  assert.is(smokeGrowth(undefined), undefined, 'an imported image\'s layout is not known: not grown');
  const config = await smokeUserData({ ...defaultLayout, vrdma: false, firmware: 'uefi-secure', grow: { diskBytes: 6 * 1024 ** 3, keep: grow.keep } }, 'n0nce');
  const checks = (config.write_files as { path: string; content: string }[]).find((f) => f.path.endsWith('smoke-checks.sh'))!.content;
  assert.match(checks, /^VRDMA='0'\nFIRMWARE=uefi-secure\nGROW_DISK_BYTES=6442450944\nGROW_KEEP='2:135168:1048576 14:2048:2048 15:4096:131072'\n/);
  assert.match(checks, /check firmware\.secure-boot secure_boot_on/);
  const none = await smokeUserData({ ...defaultLayout, vrdma: false }, 'n0nce');
  assert.match((none.write_files as { path: string; content: string }[]).find((f) => f.path.endsWith('smoke-checks.sh'))!.content, /^VRDMA='0'\nFIRMWARE=''\nGROW_DISK_BYTES=''\nGROW_KEEP=''\n/);
});

t('several boots as one report (the smoke command): ok only if all are, checks named by firmware, the failed boot\'s console first', () => {
  const boot = (firmware: SmokeReport['firmware'], ok: boolean): SmokeReport => ({ ok, detail: ok ? 'all checks passed' : 'no result line', checks: [{ id: 'cloud-init.done', status: ok ? 'pass' : 'fail', detail: '' }], warnings: [], serialLog: `/l/${firmware}.log`, ...(firmware ? { firmware } : {}) });
  const both = mergeReports([boot('bios', true), boot('uefi', false)]);
  assert.is(both.ok, false);
  assert.is(both.serialLog, '/l/uefi.log');
  assert.equal(both.checks.map((c) => c.id), ['bios.cloud-init.done', 'uefi.cloud-init.done']);
  assert.is(mergeReports([boot('bios', true)]).checks[0]!.id, 'cloud-init.done', 'one boot: as it was');
});

t('the manifest records the claim, what verify found and the boot chain\'s packages', async () => {
  const profile = await load('debian-13-hpc.yaml');
  const record = firmwareRecord({
    profile,
    facts: {
      packages: new Map([['shim-signed', '1.44+15.8-1'], ['grub-efi-amd64-signed', '1+2.12+9'], ['linux-image-6.12.118+deb13-amd64', '6.12.118-1'], ['linux-image-amd64', '6.12.118-1'], ['less', '668-1']]),
      boot: { table: 'gpt', mbrCode: 'grub', biosBoot: { partnum: 14, core: true } },
    } as never,
  });
  assert.equal(record, {
    claims: 'hybrid',
    secureBoot: true,
    bootsUnder: { bios: 'GRUB\'s boot code in the first sector, its core in BIOS boot partition 14' },
    partitionTable: 'gpt',
    bootChain: [
      { name: 'grub-efi-amd64-signed', version: '1+2.12+9' },
      { name: 'linux-image-6.12.118+deb13-amd64', version: '6.12.118-1' },
      { name: 'shim-signed', version: '1.44+15.8-1' },
    ],
  });
});

t.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

t.run();
