/**
 * The one door to qemu-img outside the VM runners' own overlays and images (vm/image.ts,
 * vm/overlay.ts): every other module converts, maps, checks or reads a disk through these, so a
 * fake of this module can stand in for the tool (Packer's QEMU Driver). Argv builders are pure.
 */
import { run } from '../exec/run.ts';
import type { DiskFormat, DiskRef, DiskUsage } from '../model/disk.ts';

export type Compression = 'zstd' | 'zlib' | 'none';

/** Pure: the qemu-img command that makes a standalone output from a backing chain. */
export function convertArgs(source: DiskRef, format: DiskFormat, compress: Compression, target: string): string[] {
  const argv = ['qemu-img', 'convert', '-f', source.format, '-O', format, '-m', '8', '-W'];
  if (format === 'qcow2') {
    if (compress !== 'none') argv.push('-c', '-o', `compression_type=${compress}`);
  } else if (format === 'vmdk') {
    // The VMware/OVA flavour: compressed, read sequentially, what importers expect.
    argv.push('-o', 'subformat=streamOptimized');
  }
  argv.push(source.path, target);
  return argv;
}

/** A plain copy into another format (a bootstrapped raw disk into qcow2, an OSv base into raw): no compression, writes in order. */
export async function convertPlain(source: { path: string; format: DiskFormat }, format: DiskFormat, target: string): Promise<void> {
  await run(['qemu-img', 'convert', '-f', source.format, '-O', format, source.path, target]);
}

/** Convert a disk (through its backing chain) into `target`, uncompressed unless asked. */
export async function convertDisk(source: DiskRef, format: DiskFormat, target: string, options: { compress?: Compression; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
  await run(convertArgs(source, format, options.compress ?? 'none', target), {
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.signal ? { cancelSignal: options.signal } : {}),
  });
}

/**
 * Pure: a disk's usage from `qemu-img map --output=json` (through the whole backing chain), whose
 * extents cover the disk from start to end: their sum is its size, and those with data that is not
 * zeroes are what a compressed image has to hold. After the seal stage's fstrim that is the
 * guest's live data and its filesystems' metadata, so the compressed size against it shows how
 * well the data compresses.
 */
export function usageOfMap(json: string): DiskUsage {
  const extents = JSON.parse(json) as { length: number; data?: boolean; zero?: boolean }[];
  if (!Array.isArray(extents)) throw new Error('qemu-img map gave no list of extents');
  return {
    virtualBytes: extents.reduce((sum, e) => sum + e.length, 0),
    dataBytes: extents.reduce((sum, e) => sum + (e.data && !e.zero ? e.length : 0), 0),
  };
}

export async function diskUsage(source: DiskRef): Promise<DiskUsage> {
  return usageOfMap((await run(['qemu-img', 'map', '--output=json', '-f', source.format, source.path], { timeoutMs: 5 * 60_000 })).stdout);
}

/** undefined when the image is sound, else the first lines of what qemu-img found. */
export async function qemuImgCheck(path: string): Promise<string | undefined> {
  const r = await run(['qemu-img', 'check', '-q', '-U', path], { allowFailure: true });
  if (r.exitCode === 0) return undefined;
  const said = `${r.stderr}\n${r.stdout}`.trim().split('\n').filter(Boolean);
  return `qemu-img check exit ${r.exitCode}: ${said.slice(0, 2).join(' | ') || 'no detail'}`;
}

/** The files of an image's backing chain, the image first; undefined when qemu-img cannot read it (in use, gone). */
export async function backingFiles(path: string): Promise<string[] | undefined> {
  const r = await run(['qemu-img', 'info', '--output=json', '-U', '--backing-chain', path], { allowFailure: true });
  if (r.exitCode !== 0) return undefined;
  return (JSON.parse(r.stdout) as { filename: string }[]).map((layer) => layer.filename);
}

/** The first `sectors` 512-byte sectors of any image qemu-img reads, written raw to `out`. */
export async function copyHead(image: string, format: DiskFormat, sectors: number, out: string): Promise<void> {
  await run(['qemu-img', 'dd', '-f', format, '-O', 'raw', 'bs=512', `count=${sectors}`, `if=${image}`, `of=${out}`]);
}
