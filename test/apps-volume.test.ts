/**
 * The apps volume: where a bootstrapped base keeps it, when the inject stage
 * may write it fresh, and the write itself with the real tools (mke2fs -d,
 * qemu-img into a qcow2 overlay) read back by e2fsprogs' debugfs, no
 * appliance: the owners and modes the profile gives, links kept as links,
 * every byte outside the partition untouched, apps too big refused by name.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProfileOrThrow } from '../src/loader/index.ts';
import { appsVolumeFstab, appsVolumeOf, diskLayoutOf, espFstab, espMkfsArgs, espVolumeId, grubInstallScript, grubPackages, sfdiskScript } from '../src/os/debian/bootstrap.ts';
import type { AppsVolume } from '../src/model/disk.ts';
import { profileBlocker, volumeBlocker, writeAppsVolume } from '../src/stages/apps-volume.ts';
import { parsePartList } from '../src/verify/parse.ts';
import { writeAtArgs } from '../src/vm/image.ts';
import { run } from '../src/exec/run.ts';
import type { GuestFacts } from '../src/model/facts.ts';
import type { Profile } from '../src/profile/schema.ts';
import { timed } from './helpers/timing.ts';

const root = join(import.meta.dirname, '..');
const tmp = await mkdtemp(join(tmpdir(), 'gf-apps-volume-'));
const t = timed(suite('apps volume (real mke2fs, qemu-img, debugfs)'));
const { profile: hybrid } = await loadProfileOrThrow(join(root, 'profiles', 'debian-12-hpc.yaml'));
// The MBR layout, whose offsets the volume tests below name; the default (hybrid) has its own test.
const profile: Profile = { ...hybrid, disk: { ...hybrid.disk, firmware: 'bios' } };
const noStep = { update() {} };
const mib = 1024 * 1024;

t('a BIOS base has a 512 MiB volume first on the disk (partition 2), the root after it (partition 1, last, so it can grow); none for an imported base or appsVolume: none', () => {
  const bios = profile;
  const layout = diskLayoutOf(bios)!;
  const volume = appsVolumeOf(bios)!;
  assert.equal(volume, { offset: mib, bytes: 512 * mib, label: 'gf-apps', mountpoint: '/opt-vm', fsckPass: 0 });
  assert.is(sfdiskScript(layout, 'D'), `label: dos\nstart=${(513 * mib) / 512}, type=83, bootable\nstart=2048, size=${(512 * mib) / 512}, type=83\n`);
  assert.is(sfdiskScript(diskLayoutOf({ ...bios, disk: { ...bios.disk, appsVolume: 'none' } })!, 'D'), 'label: dos\nstart=2048, type=83, bootable\n');
  assert.is(espFstab(layout), '', 'no ESP on a BIOS disk');
  assert.is(appsVolumeFstab(volume), 'LABEL=gf-apps /opt-vm ext4 defaults,nofail,nodev 0 0\n');
  // Checked at boot when the profile keeps the check.
  assert.is(appsVolumeFstab(appsVolumeOf({ ...profile, boot: { keep: ['boot-no-fsck'] } })!), 'LABEL=gf-apps /opt-vm ext4 defaults,nofail,nodev 0 2\n');
  assert.is(appsVolumeOf({ ...profile, disk: { ...profile.disk, appsVolume: 'none' } }), undefined);
  assert.is(appsVolumeOf({ ...profile, base: { image: { path: '/x.qcow2' } } as Profile['base'] }), undefined);
  assert.is(appsVolumeOf({ ...profile, disk: { ...profile.disk, appsVolume: '100.5M' } })!.bytes, 100 * mib, 'whole MiB');
});

t('a hybrid base (the default) is GPT: BIOS boot 14 and ESP 15 first, then the apps volume 2, the root 1 last and clear of the backup table; uefi has no BIOS boot partition', () => {
  const layout = diskLayoutOf(hybrid)!;
  const size = 4 * 1024 * mib;
  assert.equal(layout.biosBoot, { offset: mib, bytes: mib });
  assert.equal(layout.esp, { offset: 2 * mib, bytes: 64 * mib, volumeId: espVolumeId(hybrid) });
  assert.equal(layout.apps, { offset: 66 * mib, bytes: 512 * mib, label: 'gf-apps', mountpoint: '/opt-vm', fsckPass: 0 });
  assert.equal(layout.root, { offset: 578 * mib, bytes: size - 578 * mib - mib }, 'the last MiB holds the backup table (33 sectors) and alignment');
  const script = sfdiskScript(layout, '/w/base.raw');
  assert.match(script, /^label: gpt\n\/w\/base\.raw1 : start=1183744, size=7202816, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"\n/);
  assert.match(script, /\/w\/base\.raw14 : start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649/);
  assert.match(script, /\/w\/base\.raw15 : start=4096, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B/);
  assert.match(espFstab(layout), /^UUID=[0-9A-F]{4}-[0-9A-F]{4} \/boot\/efi vfat umask=0077,noauto,nofail,x-systemd\.automount 0 0\n$/);
  assert.equal(espMkfsArgs(layout.esp!, 'D').slice(0, 5), ['mkfs.vfat', '-F', '32', '-s', '1'], 'one sector a cluster: FAT32 needs 65525 clusters or firmwares read it as FAT16');
  assert.is(espVolumeId(hybrid), espVolumeId({ ...hybrid, name: 'other' } as typeof hybrid), 'bases are shared between hybrids: the id comes from what the base is');
  const uefi = diskLayoutOf({ ...hybrid, disk: { ...hybrid.disk, firmware: 'uefi' } })!;
  assert.is(uefi.biosBoot, undefined);
  assert.equal(uefi.esp!.offset, mib);
  assert.is(uefi.apps!.offset, 65 * mib);
  // What each firmware installs, and how.
  assert.equal(grubPackages('bios'), ['grub-pc']);
  assert.ok(grubPackages('hybrid').includes('grub-cloud-amd64') && grubPackages('hybrid').includes('shim-signed'));
  assert.ok(grubPackages('uefi').includes('grub-efi-amd64-signed') && !grubPackages('uefi').includes('grub-pc-bin'));
  assert.match(grubInstallScript('hybrid'), /grub-install --target=i386-pc "\$disk"\ngrub-install --target=x86_64-efi --efi-directory=\/boot\/efi --no-nvram --uefi-secure-boot --force-extra-removable\ntouch \/etc\/grub.d\/enable_cloud\nupdate-grub$/);
  assert.not.match(grubInstallScript('uefi'), /i386-pc/);
  assert.not.match(grubInstallScript('bios'), /x86_64-efi/);
});

t('sfdisk makes the hybrid layout as planned, and mkfs.vfat an ESP that is FAT32 by its cluster count (real sfdisk, mkfs.vfat, fsck.fat)', async () => {
  const layout = diskLayoutOf(hybrid)!;
  const raw = join(tmp, 'hybrid.raw');
  await run(['truncate', '-s', '4G', raw]);
  await run(['sfdisk', '--quiet', raw], { input: sfdiskScript(layout, raw) });
  const dump = (await run(['sfdisk', '--json', raw])).stdout;
  const parts = (JSON.parse(dump) as { partitiontable: { partitions: { node: string; start: number; size: number; type: string }[] } }).partitiontable.partitions;
  const byNumber = Object.fromEntries(parts.map((p) => [Number(/(\d+)$/.exec(p.node)![1]), { start: p.start * 512, size: p.size * 512, type: p.type }]));
  assert.equal(byNumber[1], { start: layout.root.offset, size: layout.root.bytes, type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4' });
  assert.equal(byNumber[2]!.start, layout.apps!.offset);
  assert.equal(byNumber[14]!.type, '21686148-6449-6E6F-744E-656564454649');
  assert.equal(byNumber[15], { start: layout.esp!.offset, size: layout.esp!.bytes, type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B' });
  await run(espMkfsArgs(layout.esp!, raw));
  const esp = join(tmp, 'esp.img');
  await run(['dd', `if=${raw}`, `of=${esp}`, 'bs=1M', `skip=${layout.esp!.offset / mib}`, `count=${layout.esp!.bytes / mib}`, 'status=none']);
  const fsck = await run(['fsck.fat', '-n', esp]);
  assert.not.match(fsck.stdout + fsck.stderr, /less than the required minimum/);
  assert.match((await run(['file', '-s', esp])).stdout, /FAT \(32 bit\).*serial number 0x([0-9a-f]{8})/i);
  await rm(raw, { force: true });
  await rm(esp, { force: true });
});

t('the volume is written fresh only when every app is inside it, the apps folder is the volume the base made, and the build left nothing there (lost+found is the filesystem\'s own)', () => {
  const volume = appsVolumeOf(profile)!;
  const mount = { label: 'gf-apps', partnum: 2, start: mib, size: 512 * mib, mode: 0o40755, uid: 0, gid: 0 };
  const facts = (entries: string[], m: Partial<typeof mount> | null = mount) => ({ paths: { '/opt-vm': { exists: true, isDir: true, entries } }, appsFolderMount: m ?? undefined }) as unknown as GuestFacts;
  assert.is(volumeBlocker(profile, volume, facts(['lost+found'])), undefined);
  assert.is(volumeBlocker(profile, volume, facts([])), undefined);
  assert.is(volumeBlocker(profile, volume, facts(['lost+found', 'built-here'])), "the build's commands left built-here in /opt-vm");
  assert.match(volumeBlocker(profile, volume, undefined)!, /a resumed build/);
  assert.is(volumeBlocker(profile, undefined, facts([])), 'the base has no apps volume');
  // The build's commands may have dropped the fstab line, or mounted something else there.
  assert.is(volumeBlocker(profile, volume, facts([], null)), '/opt-vm is not the apps volume the base made (nothing mounted there)');
  assert.is(volumeBlocker(profile, volume, facts([], { ...mount, label: 'other' })), '/opt-vm is not the apps volume the base made (label "other", partition 2 at 1048576+536870912)');
  assert.match(volumeBlocker(profile, volume, facts([], { ...mount, partnum: 3 }))!, /partition 3 at/);
  assert.match(volumeBlocker(profile, volume, facts([], { ...mount, start: 2 * mib }))!, /at 2097152\+/);
  assert.match(volumeBlocker(profile, volume, facts([], { label: 'gf-apps' }))!, /partition - at \?\+\?/, 'a logical volume labelled like ours is not ours');
  assert.is(volumeBlocker(profile, volume, facts([], { ...mount, overlapped: true } as Partial<typeof mount>)), 'another partition overlaps the apps volume (partition 2 at 1048576+536870912)');
  const outside = { apps: [...profile.apps, { src: 'x', dest: '/srv/tools/x', owner: '0:0' }] };
  assert.is(profileBlocker(outside, volume), '/srv/tools/x is outside the apps volume (/opt-vm)');
});

t('guestfish\'s part-list answer read as number, start and size', () => {
  const text = '[0] = {\n  part_num: 1\n  part_start: 537919488\n  part_end: 4294967295\n  part_size: 3757047808\n}\n[1] = {\n  part_num: 2\n  part_start: 1048576\n  part_end: 537919487\n  part_size: 536870912\n}\n';
  assert.equal(parsePartList(text), [{ num: 1, start: 537919488, size: 3757047808 }, { num: 2, start: 1048576, size: 536870912 }]);
  assert.equal(parsePartList(''), []);
});

t('qemu-img writes into the partition through the raw driver, bounded by its size; a comma in the path is doubled', () => {
  const argv = writeAtArgs('/w/apps.img', { path: '/w/a,b.qcow2', format: 'qcow2' }, mib, 16 * mib);
  assert.equal(argv, ['qemu-img', 'convert', '-n', '-f', 'raw', '/w/apps.img', '--target-image-opts', `driver=raw,offset=${mib},size=${16 * mib},file.driver=qcow2,file.file.driver=file,file.file.filename=/w/a,,b.qcow2`]);
});

/** debugfs's answer for one request on the filesystem at `offset` of a raw file. */
async function debugfs(raw: string, request: string): Promise<string> {
  const r = await run(['debugfs', '-R', request, raw]);
  return `${r.stdout}${r.stderr}`;
}

t('the apps become a fresh ext4 over the volume\'s partition of a qcow2 overlay: owners, modes and links as the profile says, the old content gone, nothing outside the partition changed', async () => {
  const volume: AppsVolume = { offset: mib, bytes: 16 * mib, label: 'gf-apps', mountpoint: '/opt-vm', fsckPass: 0 };
  // A disk whose every byte is known: random, so a stray write anywhere shows.
  const raw = join(tmp, 'disk.raw');
  await run(['sh', '-c', `head -c ${24 * mib} /dev/urandom > "$1"`, 'sh', raw]);
  const base = join(tmp, 'disk.qcow2');
  await run(['qemu-img', 'convert', '-O', 'qcow2', raw, base]);
  const overlay = join(tmp, 'overlay.qcow2');
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay]);

  const src = join(tmp, 'src');
  await mkdir(join(src, 'tool', 'lib'), { recursive: true });
  await writeFile(join(src, 'tool', 'lib', 'data'), 'data\n');
  await symlink('/etc/shadow', join(src, 'tool', 'lib', 'link'));
  await writeFile(join(src, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o600 });
  // Extended attributes of the source stay out, as the guestfish path's tar leaves them out.
  await run(['setfattr', '-n', 'user.origin', '-v', 'host', join(src, 'tool', 'lib', 'data')]);
  // A default ACL on the staging folder: the copies would inherit it, and mke2fs -d copies ACLs unless told not to.
  const scratch = join(tmp, 'scratch');
  await mkdir(scratch);
  await run(['setfacl', '-d', '-m', 'u:4321:rwx', scratch]);
  const uuid = '6f0c1a52-0d7e-4d4b-9a55-0123456789ab';
  const names = await writeAppsVolume([
    { src: join(src, 'run.sh'), dest: '/opt-vm/hello/bin/run.sh', mode: '0755', owner: '1234:1235' },
    { src: join(src, 'tool'), dest: '/opt-vm/tool', mode: '0640', owner: '2000:2000' },
    { src: join(src, 'run.sh'), dest: '/opt-vm/plain', owner: '0:0' },
    { src: join(src, 'run.sh'), dest: '/opt-vm/suid', mode: '4755', owner: '0:0' },
  ], volume, { path: overlay, format: 'qcow2' }, scratch, noStep, { mode: 0o41775, uid: 0, gid: 100, uuid });
  assert.equal(names, ['hello', 'plain', 'suid', 'tool']);

  const back = join(tmp, 'back.raw');
  await run(['qemu-img', 'convert', '-O', 'raw', overlay, back]);
  const [before, after] = [await readFile(raw), await readFile(back)];
  assert.ok(before.subarray(0, volume.offset).equals(after.subarray(0, volume.offset)), 'the bytes before the partition are untouched');
  assert.ok(before.subarray(volume.offset + volume.bytes).equals(after.subarray(volume.offset + volume.bytes)), 'the bytes after the partition are untouched');
  const fs = join(tmp, 'volume.raw');
  await writeFile(fs, after.subarray(volume.offset, volume.offset + volume.bytes));

  const id = await run(['blkid', '-o', 'export', fs]).then((r) => r.stdout);
  assert.match(id, /^LABEL=gf-apps$/m);
  assert.match(id, new RegExp(`^UUID=${uuid}$`, 'm'), 'the volume keeps the UUID the build\'s volume had');
  assert.match(await run(['e2fsck', '-fn', fs]).then((r) => r.stdout), /clean|files/, 'e2fsck finds no error');
  const run_ = await debugfs(fs, 'stat /hello/bin/run.sh');
  assert.match(run_, /Type: regular\s+Mode:\s+0755/);
  assert.match(run_, /User:\s+1234\s+Group:\s+1235/);
  assert.match(await debugfs(fs, 'cat /hello/bin/run.sh'), /echo hi/);
  const between = await debugfs(fs, 'stat /hello/bin');
  assert.match(between, /Type: directory\s+Mode:\s+0755/, 'folders between are 0755');
  assert.match(between, /User:\s+0\s+Group:\s+0/, 'and root\'s');
  assert.match(await debugfs(fs, 'stat /'), /Mode:\s+01775[\s\S]*User:\s+0\s+Group:\s+100/, 'the volume\'s top keeps the owner and mode the build gave the apps folder');
  for (const path of ['/hello/bin/run.sh', '/hello/bin', '/tool/lib/data']) assert.not.match(await debugfs(fs, `ea_list ${path}`), /posix_acl|4321/, `no ACL of the host's staging folder on ${path}`);
  assert.match(await debugfs(fs, 'stat /suid'), /Mode:\s+04755/, 'a setuid mode survives the chown');
  assert.not.match(await debugfs(fs, 'ea_list /tool/lib/data'), /origin/, 'no extended attribute from the host');
  assert.match(await debugfs(fs, 'stat /tool/lib/data'), /Mode:\s+0640[\s\S]*User:\s+2000\s+Group:\s+2000/);
  const link = await debugfs(fs, 'stat /tool/lib/link');
  assert.match(link, /Type: symlink/, 'a link stays a link');
  assert.match(link, /Fast link dest: "\/etc\/shadow"/);
  assert.match(link, /User:\s+2000/);
  assert.match(await debugfs(fs, 'stat /tool'), /User:\s+2000\s+Group:\s+2000/, 'the app\'s own folder is the app\'s owner\'s');
  assert.match(await debugfs(fs, 'stat /plain'), /Mode:\s+0644/, 'a file with no mode gets 0644, as guestfish upload gives');
  assert.equal((await run(['ls', '-A', scratch])).stdout.split('\n').filter(Boolean), [], 'no staged tree, tar or image left');
});

t('apps too big for the volume: a clear error naming disk.appsVolume; nothing is written', async () => {
  const volume: AppsVolume = { offset: mib, bytes: 16 * mib, label: 'gf-apps', mountpoint: '/opt-vm', fsckPass: 0 };
  const disk = join(tmp, 'small.qcow2');
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, String(24 * mib)]);
  const big = join(tmp, 'big.bin');
  await run(['sh', '-c', `head -c ${20 * mib} /dev/urandom > "$1"`, 'sh', big]);
  const error = await writeAppsVolume([{ src: big, dest: '/opt-vm/big.bin', owner: '0:0' }], volume, { path: disk, format: 'qcow2' }, tmp, noStep).then(() => undefined, (e: Error & { hint?: string }) => e);
  assert.ok(error, 'should fail');
  assert.match(error!.message, /^the apps do not fit in the 16(\.0)? MiB apps volume \(.*writing file "big\.bin"/, error!.message);
  assert.match(error!.hint ?? '', /disk\.appsVolume/);
  const map = JSON.parse((await run(['qemu-img', 'map', '--output=json', disk])).stdout) as { data: boolean }[];
  assert.equal(map.filter((m) => m.data), [], 'the disk is still empty');
});

t.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

t.run();
