/** Writing outputs: convert through a temp name, rename, record checksums. */
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { run } from '../exec/run.ts';
import { GuestSession } from '../guestfs/session.ts';
import { mountGuest } from '../verify/mount.ts';
import type { Accel } from '../vm/accel.ts';
import type { DiskFormat, DiskRef, OutputFile } from '../model/disk.ts';
import { sha256File, tempPathFor, writeFileAtomic } from '../util/fs.ts';
import { acquireLock } from '../exec/lock.ts';
import { convertDisk, type Compression } from '../vm/qemu-img.ts';


export type RootfsFormat = 'tar' | 'squashfs';

/** File names of each output, next to each other in the output folder. */
export function outputName(name: string, format: DiskFormat | RootfsFormat): string {
  return format === 'tar' ? `${name}.rootfs.tar` : format === 'squashfs' ? `${name}.rootfs.sqsh` : `${name}.${format}`;
}

/** Convert to `target` via a temp file next to it; a failure leaves nothing at `target`. */
export async function convertImage(
  source: DiskRef,
  format: DiskFormat,
  compress: Compression,
  target: string,
  signal?: AbortSignal,
): Promise<OutputFile> {
  const temp = tempPathFor(target);
  try {
    await convertDisk(source, format, temp, { compress, timeoutMs: 60 * 60_000, ...(signal ? { signal } : {}) });
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return { path: target, format, bytes: (await stat(target)).size, sha256: await sha256File(target) };
}

/** Rewrite this build's lines of SHA256SUMS; a lock keeps parallel builds into one folder from losing lines. */
export async function updateSums(outDir: string, files: OutputFile[], drop: string[] = [], then?: () => Promise<unknown>): Promise<void> {
  const lock = await acquireLock(join(outDir, '.SHA256SUMS.lock'), { profile: 'SHA256SUMS' }, { removeOnRelease: true });
  try {
    await rewriteSums(outDir, files, drop);
    // Under the same lock (signing): another build into this folder cannot change the file in between.
    await then?.();
  } finally {
    await lock.release();
  }
}

async function rewriteSums(outDir: string, files: OutputFile[], drop: string[]): Promise<void> {
  const sums = join(outDir, 'SHA256SUMS');
  const names = new Set([...files.map((f) => basename(f.path)), ...drop]);
  const old = await readFile(sums, 'utf8').catch(() => '');
  const kept = old.split('\n').filter((line) => line.trim() && !names.has(line.replace(/^[0-9a-f]{64} [ *]/, '')));
  const lines = [...kept, ...files.map((f) => `${f.sha256}  ${basename(f.path)}`)].sort((a, b) => a.slice(66).localeCompare(b.slice(66)));
  if (lines.length === 0) await rm(sums, { force: true });
  else await writeFileAtomic(sums, `${lines.join('\n')}\n`);
  // A signature of the old SHA256SUMS no longer holds: gone, unless signing follows (updateSums' `then`).
  await rm(join(outDir, 'SHA256SUMS.asc'), { force: true });
}

export async function toolVersions(tools: string[][]): Promise<Record<string, string>> {
  const versions: Record<string, string> = {};
  for (const argv of tools) {
    const r = await run(argv, { allowFailure: true, timeoutMs: 30_000 }).catch(() => undefined);
    const line = `${r?.stdout ?? ''}${r?.stderr ?? ''}`.split('\n').find((l) => l.trim());
    versions[argv[0]!] = line?.trim() ?? 'unknown';
  }
  return versions;
}

/**
 * The root filesystem as a tarball and/or a squashfs image. One read-only
 * guestfish launch streams the tree out (tar-out, owners numeric, xattrs,
 * ACLs, SELinux labels); squashfs is then made on the host by mksquashfs
 * from that tree. Measured here: mksquashfs inside the TCG appliance took
 * over ten minutes for a 900 MiB tree. Each output goes through a temp name.
 */
export async function writeRootfsOutputs(
  source: DiskRef,
  formats: RootfsFormat[],
  targets: Record<RootfsFormat, string>,
  options: { accel: Accel; inspect: boolean; onRetry?: (reason: string) => void },
): Promise<OutputFile[]> {
  if (formats.length === 0) return [];
  const tarTemp = tempPathFor(targets.tar);
  const tree = `${tempPathFor(targets.squashfs)}.d`;
  const sqshTemp = tempPathFor(targets.squashfs);
  const written: OutputFile[] = [];
  const done = async (format: RootfsFormat, temp: string) => {
    await rename(temp, targets[format]);
    written.push({ path: targets[format], format, bytes: (await stat(targets[format])).size, sha256: await sha256File(targets[format]) });
  };
  try {
    const session = await GuestSession.open([{ ...source, readonly: true }], { accel: options.accel, smp: 2, ...(options.onRetry ? { onRetry: options.onRetry } : {}) });
    try {
      await mountGuest(session, { readonly: true, inspect: options.inspect });
      await session.call('tar-out', '/', tarTemp, 'numericowner:true', 'xattrs:true', 'acls:true', 'selinux:true');
    } finally {
      await session.close();
    }
    if (formats.includes('squashfs')) {
      await mkdir(tree, { recursive: true });
      await run(['tar', '-xpf', tarTemp, '-C', tree, '--numeric-owner', '--xattrs', '--xattrs-include=*', '--acls', '--selinux'], { timeoutMs: 30 * 60_000 });
      await run(['mksquashfs', tree, sqshTemp, '-comp', 'zstd', '-noappend', '-quiet', '-no-progress'], { timeoutMs: 30 * 60_000 });
    }
    if (formats.includes('tar')) await done('tar', tarTemp);
    if (formats.includes('squashfs')) await done('squashfs', sqshTemp);
  } finally {
    await rm(tarTemp, { force: true });
    await rm(sqshTemp, { force: true });
    await rm(tree, { recursive: true, force: true });
  }
  return formats.map((f) => written.find((w) => w.format === f)!);
}
