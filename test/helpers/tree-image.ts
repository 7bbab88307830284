/** Small guest disks for tests: a file tree written here, then an ext4 image filled by mke2fs -d (no appliance). */
import { chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from '../../src/exec/run.ts';

export type Tree = Record<string, string | Buffer | { dir: true; mode?: number } | { link: string }>;

export async function writeTree(dir: string, tree: Tree): Promise<void> {
  for (const [path, what] of Object.entries(tree)) {
    const target = join(dir, path);
    await mkdir(dirname(target), { recursive: true });
    if (typeof what === 'string' || Buffer.isBuffer(what)) await writeFile(target, what);
    else if ('link' in what) await symlink(what.link, target);
    else {
      await mkdir(target, { recursive: true });
      if (what.mode !== undefined) await chmod(target, what.mode);
    }
  }
}

/** `fill` may add to the tree folder before it becomes the image (e.g. an rpm database). */
export async function makeImage(tmp: string, name: string, tree: Tree, fill?: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(tmp, `${name}.tree`);
  await writeTree(dir, tree);
  await fill?.(dir);
  const image = join(tmp, `${name}.raw`);
  await run(['mke2fs', '-q', '-t', 'ext4', '-L', 'rootfs', '-d', dir, image, '64M']);
  await rm(dir, { recursive: true, force: true });
  return image;
}

/**
 * A PE file's headers as a loader or kernel has them (MZ, PE, AMD64, PE32+), with a certificate
 * table entry when `signed`: what verify reads to tell a signed loader from an unsigned one.
 */
export function fakePe(signed: boolean, machine = 0x8664): Buffer {
  const b = Buffer.alloc(1024);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x80, 0x3c);
  b.write('PE\0\0', 0x80, 'latin1');
  b.writeUInt16LE(machine, 0x84);
  b.writeUInt16LE(0x20b, 0x98);
  // NumberOfRvaAndSizes: the 16 data directories every loader and kernel has.
  b.writeUInt32LE(16, 0x98 + 108);
  // Data directory 4 (the certificate table) of a PE32+ optional header: offset, size.
  if (signed) {
    b.writeUInt32LE(0x400, 0x98 + 112 + 32);
    b.writeUInt32LE(0x600, 0x98 + 112 + 36);
  }
  return b;
}

/**
 * A partitioned disk the way a firmware boots one, made with the host's tools (sfdisk, mke2fs -d,
 * mkfs.vfat, mtools' mcopy, dd), no appliance. `bios`: boot code with GRUB's signature in the first
 * sector (and on GPT, a BIOS boot partition 14 holding a core); `uefi`: ESP 15 (type EF00 on GPT,
 * 0xEF on MBR) with `esp`'s files; the root (partition 1) holds the tree.
 */
export async function makeBootDisk(tmp: string, name: string, tree: Tree, disk: { table: 'gpt' | 'dos'; bios: boolean; esp?: Record<string, Buffer> }): Promise<string> {
  const mib = 1024 * 1024;
  const dir = join(tmp, `${name}.tree`);
  await writeTree(dir, tree);
  const image = join(tmp, `${name}.raw`);
  await run(['truncate', '-s', '200M', image]);
  const gpt = disk.table === 'gpt';
  const lines = gpt
    ? ['label: gpt', `${image}1 : start=${(100 * mib) / 512}, size=${(98 * mib) / 512}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4`,
      ...(disk.bios ? [`${image}14 : start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649`] : []),
      ...(disk.esp ? [`${image}15 : start=${(2 * mib) / 512}, size=${(64 * mib) / 512}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B`] : [])]
    : ['label: dos', `start=${(100 * mib) / 512}, size=${(98 * mib) / 512}, type=83, bootable`, ...(disk.esp ? [`start=${(2 * mib) / 512}, size=${(64 * mib) / 512}, type=ef`] : [])];
  await run(['sfdisk', '--quiet', image], { input: `${lines.join('\n')}\n` });
  await run(['mke2fs', '-q', '-t', 'ext4', '-L', 'rootfs', '-d', dir, '-E', `offset=${100 * mib}`, image, `${98 * 1024}k`]);
  await rm(dir, { recursive: true, force: true });
  const patch = async (bytes: Buffer, offset: number) => {
    const file = join(tmp, `${name}.patch`);
    await writeFile(file, bytes);
    await run(['dd', `if=${file}`, `of=${image}`, 'bs=1', `seek=${offset}`, 'conv=notrunc', 'status=none']);
    await rm(file, { force: true });
  };
  if (disk.bios) {
    // boot.img's code area carries the word GRUB among its messages ("GRUB ", "Geom", "Hard Disk", "Read", " Error").
    const code = Buffer.alloc(440, 0x90);
    code.write('GRUB \0Geom\0Hard Disk\0Read\0 Error', 0x180, 'latin1');
    await patch(code, 0);
    if (gpt) await patch(Buffer.alloc(512, 0x52), mib);
  }
  if (disk.esp) {
    await run(['mkfs.vfat', '-F', '32', '-s', '1', '-n', 'EFI', '--offset', String((2 * mib) / 512), image, String(64 * 1024)]);
    const at = `${image}@@${2 * mib}`;
    const folders = new Set(Object.keys(disk.esp).flatMap((p) => p.split('/').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('/'))));
    for (const folder of [...folders].sort()) await run(['mmd', '-i', at, `::/${folder}`]);
    for (const [path, bytes] of Object.entries(disk.esp)) {
      const file = join(tmp, `${name}.esp-file`);
      await writeFile(file, bytes);
      await run(['mcopy', '-i', at, file, `::/${path}`]);
      await rm(file, { force: true });
    }
  }
  return image;
}
