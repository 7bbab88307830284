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
import { ensureTrustedDir, untrustedPathProblem } from './trusted-path.ts';
import { UsageError } from '../errors.ts';

/** The cache root, made private when guestforge creates it. */
export async function privateCacheDir(): Promise<string> {
  const root = cacheDir();
  await mkdir(root, { recursive: true, mode: 0o700 });
  return root;
}

export async function makeWorkDir(name: string, what: string): Promise<string> {
  // Scripts, sockets and seeds are made in it and run as root: every folder on the way must be
  // ours, not writable by others and no link (another user who could rename work/ would choose them).
  await privateCacheDir();
  const root = await ensureTrustedDir(join(cacheDir(), 'work'), 'the work folder', 0o700);
  const dir = join(root, name);
  await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  const problem = await untrustedPathProblem(dir, { mustExist: true });
  if (problem) throw new UsageError(`the work folder: ${problem}`, { hint: 'guestforge runs scripts from there as root: use a cache only root or you can change (XDG_CACHE_HOME)' });
  await writeFileAtomic(join(dir, 'owner.json'), JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString(), profile: what }), 0o600);
  return dir;
}
