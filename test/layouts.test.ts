/**
 * verify on the disk layouts images from elsewhere come in, each made here
 * (no downloads) in one guestfish launch: xfs root; btrfs with the root and
 * /home as subvolumes (openSUSE/Fedora); separate /boot, /var and /home
 * mounted from fstab by LABEL and UUID (the dpkg database on /var, so a
 * missed mount shows); LVM (RHEL's rootvg, / and /var as LVs); GPT with a
 * BIOS boot partition and an EFI system partition mounted by PARTUUID. They
 * are read as raw, vmdk, compressed qcow2 and plain qcow2. A bare filesystem
 * is verify.test.ts's own disk. Two operating systems on one disk, and a
 * disk with no Linux filesystem, exit 2 saying what was found.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { writeTree, type Tree } from './helpers/tree-image.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const tmp = await mkdtemp(join(tmpdir(), 'gf-layouts-'));
const env = { LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' };

/** A guest that passes every rule but vRDMA's. */
const guest: Tree = {
  'etc/os-release': 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
  'etc/debian_version': '12.8\n',
  'usr/bin/true': '',
  bin: { link: 'usr/bin' },
  'var/lib/dpkg/status': 'Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4\n\nPackage: cloud-init\nStatus: install ok installed\nArchitecture: all\nVersion: 22.4.2-1\n',
  'etc/cloud/cloud.cfg': 'users: [default]\n',
  'etc/cloud/cloud.cfg.d/90_datasource.cfg': 'datasource_list: [ NoCloud, None ]\n',
  workspace: { dir: true, mode: 0o1777 },
  'home/hpc/.profile': '',
  opt: { dir: true },
  'opt-vm/app/run.sh': '#!/bin/sh\n',
  'etc/passwd': 'root:x:0:0:root:/root:/bin/bash\nhpc:x:1000:1000::/home/hpc:/bin/bash\n',
  'etc/shadow': 'root:*:19000:0:99999:7:::\nhpc:!:19000:0:99999:7:::\n',
  'etc/machine-id': '',
  'etc/ssh/sshd_config': 'PasswordAuthentication no\n',
};

const uuid = { root: '6f1c3c52-4c6a-4b7e-9a52-0d1f0c1e2a01', var: '6f1c3c52-4c6a-4b7e-9a52-0d1f0c1e2a02', btrfs: '6f1c3c52-4c6a-4b7e-9a52-0d1f0c1e2a03', gptRoot: '6f1c3c52-4c6a-4b7e-9a52-0d1f0c1e2a04' };
const espGuid = '0C3F59D1-7D5E-4C43-9F3A-2B7B3C5A1E01';

interface Layout {
  name: string;
  /** guestfish commands after `run`, on this layout's device; `tar-in` of the guest comes after them. */
  make: (dev: string) => string[];
  fstab?: string;
  /** After the guest: unmount what was mounted. */
  format: 'raw' | 'vmdk' | 'qcow2-compressed' | 'qcow2';
}

const layouts: Layout[] = [
  {
    name: 'xfs',
    make: (d) => [`part-disk ${d} mbr`, `mkfs xfs ${d}1`, `set-uuid ${d}1 ${uuid.root}`, `mount ${d}1 /`],
    fstab: `UUID=${uuid.root} / xfs defaults 0 0`,
    format: 'raw',
  },
  {
    name: 'btrfs-subvolumes',
    make: (d) => [
      `part-disk ${d} mbr`, `mkfs btrfs ${d}1`, `set-uuid ${d}1 ${uuid.btrfs}`,
      `mount ${d}1 /`, 'btrfs-subvolume-create /root', 'btrfs-subvolume-create /home', 'umount /',
      `mount-options subvol=root ${d}1 /`, 'mkdir /home', `mount-options subvol=home ${d}1 /home`,
    ],
    fstab: `UUID=${uuid.btrfs} / btrfs subvol=root 0 0\nUUID=${uuid.btrfs} /home btrfs subvol=home 0 0`,
    format: 'vmdk',
  },
  {
    name: 'separate-boot-var-home',
    make: (d) => [
      `part-init ${d} mbr`, `part-add ${d} p 2048 206847`, `part-add ${d} p 206848 616447`, `part-add ${d} p 616448 821247`, `part-add ${d} p 821248 -1`,
      `mkfs ext4 ${d}1 label:boot`, `mkfs ext4 ${d}2`, `set-uuid ${d}2 ${uuid.root}`, `mkfs ext4 ${d}3`, `set-uuid ${d}3 ${uuid.var}`, `mkfs ext4 ${d}4 label:home`,
      `mount ${d}2 /`, 'mkdir /boot', 'mkdir /var', 'mkdir /home', `mount ${d}1 /boot`, `mount ${d}3 /var`, `mount ${d}4 /home`,
    ],
    fstab: `UUID=${uuid.root} / ext4 defaults 0 1\nLABEL=boot /boot ext4 defaults 0 2\nUUID=${uuid.var} /var ext4 defaults 0 2\nLABEL=home /home ext4 defaults 0 2`,
    format: 'qcow2-compressed',
  },
  {
    name: 'lvm-rootvg',
    make: (d) => [
      `part-init ${d} mbr`, `part-add ${d} p 2048 206847`, `part-add ${d} p 206848 -1`,
      `mkfs ext4 ${d}1 label:boot`, `pvcreate ${d}2`, `vgcreate rootvg ${d}2`, 'lvcreate root rootvg 200', 'lvcreate var rootvg 100',
      'mkfs ext4 /dev/rootvg/root', 'mkfs ext4 /dev/rootvg/var',
      'mount /dev/rootvg/root /', 'mkdir /boot', 'mkdir /var', `mount ${d}1 /boot`, 'mount /dev/rootvg/var /var',
    ],
    fstab: '/dev/mapper/rootvg-root / ext4 defaults 0 1\nLABEL=boot /boot ext4 defaults 0 2\n/dev/mapper/rootvg-var /var ext4 defaults 0 2',
    format: 'qcow2',
  },
  {
    name: 'gpt-esp-biosboot',
    make: (d) => [
      `part-init ${d} gpt`, `part-add ${d} p 2048 4095`, `part-add ${d} p 4096 208895`, `part-add ${d} p 208896 -34`,
      `part-set-gpt-type ${d} 1 21686148-6449-6E6F-744E-656564454649`, `part-set-gpt-type ${d} 2 C12A7328-F81F-11D2-BA4B-00A0C93EC93B`, `part-set-gpt-guid ${d} 2 ${espGuid}`,
      `mkfs vfat ${d}2`, `mkfs ext4 ${d}3`, `set-uuid ${d}3 ${uuid.gptRoot}`,
      `mount ${d}3 /`, 'mkdir-p /boot/efi', `mount ${d}2 /boot/efi`,
    ],
    fstab: `UUID=${uuid.gptRoot} / ext4 defaults 0 1\nPARTUUID=${espGuid.toLowerCase()} /boot/efi vfat umask=0077 0 1`,
    format: 'qcow2',
  },
  {
    name: 'two-systems',
    make: (d) => [
      `part-init ${d} mbr`, `part-add ${d} p 2048 206847`, `part-add ${d} p 206848 -1`, `mkfs ext4 ${d}1`, `mkfs ext4 ${d}2`,
      // The second system first (the guest tar then goes on the first, mounted last at /).
      `mount ${d}2 /`, `tar-in ${join(tmp, 'guest.tar')} /`, 'umount /', `mount ${d}1 /`,
    ],
    format: 'qcow2',
  },
];

const made = timed(suite('disk layouts from elsewhere, read by guestforge verify'));

made.before(async () => {
  const tree = join(tmp, 'guest');
  await writeTree(tree, guest);
  await execa('tar', ['-C', tree, '--owner=0', '--group=0', '--numeric-owner', '-cf', join(tmp, 'guest.tar'), '.']);
  // One launch makes every disk: each layout on its own disk, the guest written through its mounts.
  const devices = [...layouts.map((l) => l.name), 'no-linux'];
  const script: string[] = [];
  for (const name of devices) script.push(`disk-create ${join(tmp, `${name}.qcow2`)} qcow2 512M`, `add ${join(tmp, `${name}.qcow2`)} format:qcow2`);
  script.push('run');
  layouts.forEach((l, i) => {
    const dev = `/dev/sd${String.fromCharCode(97 + i)}`;
    script.push(...l.make(dev), `tar-in ${join(tmp, 'guest.tar')} /`);
    if (l.fstab) script.push(`write /etc/fstab "${l.fstab.replaceAll('\n', '\\n')}\\n"`);
    script.push('umount-all');
  });
  const last = `/dev/sd${String.fromCharCode(97 + layouts.length)}`;
  script.push(`part-disk ${last} mbr`, `mkfs vfat ${last}1`, 'exit');
  const r = await execa('guestfish', [], { input: `${script.join('\n')}\n`, env, reject: false, timeout: 15 * 60_000 });
  assert.is(r.exitCode, 0, `${r.stderr}\n${script.join('\n')}`);
  for (const l of layouts) {
    const src = join(tmp, `${l.name}.qcow2`);
    if (l.format === 'raw') await execa('qemu-img', ['convert', '-O', 'raw', src, join(tmp, `${l.name}.raw`)]);
    if (l.format === 'vmdk') await execa('qemu-img', ['convert', '-O', 'vmdk', src, join(tmp, `${l.name}.vmdk`)]);
    if (l.format === 'qcow2-compressed') await execa('qemu-img', ['convert', '-c', '-O', 'qcow2', src, join(tmp, `${l.name}.z.qcow2`)]);
  }
});

const imageOf = (l: Layout) => join(tmp, l.format === 'raw' ? `${l.name}.raw` : l.format === 'vmdk' ? `${l.name}.vmdk` : l.format === 'qcow2-compressed' ? `${l.name}.z.qcow2` : `${l.name}.qcow2`);

async function verify(image: string) {
  const r = await execa('node', [cli, 'verify', image, '--json'], { reject: false, env: { CI: '1' }, timeout: 10 * 60_000 });
  return { ...r, report: r.exitCode !== 2 && r.stdout ? (JSON.parse(r.stdout) as { results: { id: string; verdict: string; evidence: string }[] }) : undefined };
}

for (const l of layouts.filter((x) => x.name !== 'two-systems')) {
  made(`${l.name} (${l.format}): every rule passes, read through its mounts`, async () => {
    const r = await verify(imageOf(l));
    assert.is(r.exitCode, 0, `${r.stderr}\n${r.stdout}`);
    for (const x of r.report!.results) assert.is(x.verdict, x.id.startsWith('vrdma.') ? 'skip' : 'pass', `${x.id}: ${x.evidence}`);
    const evidence = new Map(r.report!.results.map((x) => [x.id, x.evidence]));
    // Read from the right filesystem: the dpkg database on /var, the homes on /home.
    assert.match(evidence.get('cloud-init.installed')!, /cloud-init 22\.4\.2-1 \(dpkg database\)/);
    assert.match(evidence.get('layout.home')!, /1 regular user\(s\): hpc/);
    assert.match(evidence.get('layout.opt-vm')!, /\/opt-vm: app/);
  });
}

made('two operating systems on one disk: exit 2 naming both, no verdict', async () => {
  const r = await verify(join(tmp, 'two-systems.qcow2'));
  assert.is(r.exitCode, 2, r.all ?? r.stderr);
  assert.match(r.stderr, /the image holds 2 operating systems \(\/dev\/sda1: .*; \/dev\/sda2: .*\)/);
  assert.is(r.stdout, '', 'no report');
});

made('no Linux filesystem: exit 2 saying what was found', async () => {
  const r = await verify(join(tmp, 'no-linux.qcow2'));
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /no Linux operating system found on the image \(filesystems: \/dev\/sda1 \(vfat\)\)/);
});

made.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

made.run();
