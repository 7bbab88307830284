/**
 * OSv reads its boot command line from the disk image: a NUL-terminated
 * string at byte offset 512, right after the boot sector, which is where
 * OSv's own image tools write it.
 */
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../errors.ts';
import { mbrEntry2, zfsPartitionType } from './disk.ts';
import { copyHead } from '../../vm/qemu-img.ts';

export const cmdlineOffset = 512;
/** guestforge keeps the command line within the sectors before OSv's loader; longer ones are refused. */
export const cmdlineMaxBytes = 1023;

/** Writes the command line into a raw image file. */
export async function writeCmdline(rawImage: string, cmdline: string): Promise<void> {
  const bytes = Buffer.from(`${cmdline}\0`, 'utf8');
  if (bytes.length > cmdlineMaxBytes + 1) {
    throw new UserError(`the OSv command line is ${bytes.length - 1} bytes; at most ${cmdlineMaxBytes} fit in the image`, { hint: cmdline.slice(0, 80) });
  }
  const handle = await open(rawImage, 'r+');
  try {
    await handle.write(bytes, 0, bytes.length, cmdlineOffset);
  } finally {
    await handle.close();
  }
}

/** Pure: the command line from the bytes at offset 512, or undefined when they are not one. */
export function parseCmdline(region: Buffer): string | undefined {
  const end = region.indexOf(0);
  if (end < 0) return undefined;
  const text = region.subarray(0, end).toString('utf8');
  // eslint-disable-next-line no-control-regex
  return /^[\x20-\x7e]*$/.test(text) ? text : undefined;
}

/** The first `sectors` sectors of any image qemu-img reads (qcow2, raw), through qemu-img dd. */
async function headOf(image: string, format: 'qcow2' | 'raw' | 'vmdk', sectors = 3): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'guestforge-head-'));
  const scratch = join(dir, 'head.raw');
  try {
    await copyHead(image, format, sectors, scratch);
    return await readFile(scratch);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function readCmdline(image: string, format: 'qcow2' | 'raw' | 'vmdk'): Promise<string | undefined> {
  return parseCmdline((await headOf(image, format)).subarray(cmdlineOffset));
}

/** Pure: OSv's version banner inside the loader ("OSv v0.57.0-397-g70446eb4"), which it keeps uncompressed. */
export function osvVersionIn(loader: Buffer): string | undefined {
  return /OSv v[0-9][0-9A-Za-z.+-]{0,60}/.exec(loader.toString('latin1'))?.[0];
}

export interface OsvImageFacts {
  cmdline: string;
  version?: string;
  /** The ZFS partition (MBR entry 2), when the image has one; none: a kernel-only loader. */
  zfs?: { start: number; bytes: number };
}

/** What verify says of an OSv image: its command line, OSv's version, the ZFS partition. Undefined: no OSv image. */
export async function inspectOsv(image: string, format: 'qcow2' | 'raw' | 'vmdk'): Promise<OsvImageFacts | undefined> {
  const head = await headOf(image, format);
  if (head.length < 1024 || head[510] !== 0x55 || head[511] !== 0xaa) return undefined;
  const cmdline = parseCmdline(head.subarray(cmdlineOffset));
  if (cmdline === undefined || cmdline.startsWith('EFI PART')) return undefined;
  // OSv's images never use MBR entry 1; a Linux disk's first partition is there.
  if (head.subarray(0x1be, 0x1ce).some((b) => b !== 0)) return undefined;
  const start = head.readUInt32LE(mbrEntry2 + 8) * 512;
  const hasZfs = head[mbrEntry2 + 4] === zfsPartitionType && start > 0;
  // The loader is a few MiB and keeps its banner uncompressed; read at most 16 MiB. An empty
  // command line (a base or a bare loader) counts only with the banner.
  const loader = await headOf(image, format, Math.min(hasZfs ? start : 16 * 1024 * 1024, 16 * 1024 * 1024) / 512);
  const version = osvVersionIn(loader);
  if (!cmdline && !version) return undefined;
  return {
    cmdline,
    ...(version ? { version } : {}),
    ...(hasZfs ? { zfs: { start, bytes: head.readUInt32LE(mbrEntry2 + 12) * 512 } } : {}),
  };
}
