/** qcow2 overlays: each stage writes to a thin layer on the previous stage's disk, never to the disk itself. */
import { chmod } from 'node:fs/promises';
import { resolve } from 'node:path';
import { run } from '../exec/run.ts';
import type { DiskRef } from '../model/disk.ts';

/**
 * A new qcow2 backed by `backing` (absolute path, explicit format: qemu
 * refuses to guess a backing format). `sizeBytes`, when larger than the
 * backing disk, grows the virtual disk; the guest's growpart fills it.
 */
export async function createOverlay(backing: DiskRef, path: string, sizeBytes?: number): Promise<DiskRef> {
  const argv = ['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', resolve(backing.path), '-F', backing.format, path];
  if (sizeBytes !== undefined) argv.push(String(sizeBytes));
  await run(argv);
  await chmod(path, 0o600); // the guest's disk: hashes, keys, what the commands left
  return { path, format: 'qcow2' };
}
