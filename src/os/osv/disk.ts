/**
 * The disk of a ZFS OSv image: OSv's loader (boot sector, command line at
 * byte 512, compressed kernel) followed by one ZFS partition in MBR entry 2,
 * starting at the loader's size rounded up to 2 MiB. OSv's partition reader
 * wants the CHS fields filled the way OSv's own image tools fill them
 * (255 heads, 63 sectors per track, the cylinder shifted into the sector
 * word); with them zero the builder's mkfs finds no device. Pure functions.
 */
import { UserError } from '../../errors.ts';
import { formatSize } from '../../profile/units.ts';

export const mbrEntry2 = 0x1ce;
export const zfsPartitionType = 0x83;
export const partitionAlign = 2 * 1024 * 1024;
/** OSv's mkfs asserts on a smaller pool, and the builder then hangs instead of powering off. */
export const minZfsBytes = 64 * 1024 * 1024;

/** The MBR's idea of a sector as (cylinder, head, sector), as OSv's tools write it. */
export function osvChs(lba: number): [number, number, number] {
  const c = Math.floor(lba / 63 / 255);
  if (c > 1023) return [1023, 254, 63];
  return [c, Math.floor(lba / 63) % 255, (lba % 63) + 1];
}

/** The 16 bytes of a ZFS partition entry from `startSector`, `sectors` long. */
export function zfsPartitionEntry(startSector: number, sectors: number): Buffer {
  const entry = Buffer.alloc(16);
  const [c, h, s] = osvChs(startSector);
  const [ce, he, se] = osvChs(startSector + sectors);
  entry[1] = h;
  entry.writeUInt16LE(((c << 6) | s) & 0xffff, 2);
  entry[4] = zfsPartitionType;
  entry[5] = he;
  entry.writeUInt16LE(((ce << 6) | se) & 0xffff, 6);
  entry.writeUInt32LE(startSector, 8);
  entry.writeUInt32LE(sectors, 12);
  return entry;
}

/**
 * How many bytes of a base image are OSv's loader: up to its ZFS partition
 * when it has one (a composed image), else the whole file (a kernel-only
 * loader such as Capstan's osv-loader). Undefined when the first sector is
 * no boot sector.
 */
export function loaderBytes(mbr: Buffer, fileBytes: number): number | undefined {
  if (mbr.length < 512 || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return undefined;
  const start = mbr.readUInt32LE(mbrEntry2 + 8) * 512;
  if (mbr[mbrEntry2 + 4] === zfsPartitionType && start > 0 && start <= fileBytes) return start;
  return fileBytes;
}

export interface OsvLayout {
  loaderBytes: number;
  partitionStart: number;
  partitionBytes: number;
  diskBytes: number;
}

/** Where the ZFS partition goes on a disk of `diskBytes`; refuses a pool OSv's mkfs cannot make. */
export function osvLayout(loader: number, diskBytes: number): OsvLayout {
  const partitionStart = Math.ceil(loader / partitionAlign) * partitionAlign;
  const partitionBytes = Math.floor((diskBytes - partitionStart) / 512) * 512;
  if (partitionBytes < minZfsBytes) {
    const need = partitionStart + minZfsBytes;
    throw new UserError(`disk.size ${formatSize(diskBytes)} leaves ${formatSize(Math.max(0, partitionBytes))} for the ZFS partition after OSv's loader (${formatSize(loader)}); OSv's mkfs needs at least ${formatSize(minZfsBytes)}`, {
      hint: `set disk.size to ${Math.ceil(need / 1024 / 1024)}M or more`,
    });
  }
  return { loaderBytes: loader, partitionStart, partitionBytes, diskBytes };
}
