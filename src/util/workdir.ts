/**
 * Work folders under <cache>/work: private (0700: seeds, keys and user-data
 * pass through them), each with an owner.json naming the process, so
 * `cache prune` can clear the folders of runs that died without clean-up.
 */
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from './fs.ts';
import { cacheDir } from './paths.ts';

/** The cache root, made private when guestforge creates it (a cache a team shares by group keeps its mode). */
export async function privateCacheDir(): Promise<string> {
  const root = cacheDir();
  await mkdir(root, { recursive: true, mode: 0o700 });
  return root;
}

export async function makeWorkDir(name: string, what: string): Promise<string> {
  const dir = join(await privateCacheDir(), 'work', name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(dir, 'owner.json'), JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString(), profile: what }), 0o600);
  return dir;
}
