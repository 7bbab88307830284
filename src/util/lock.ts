/**
 * A lock file made with O_EXCL, holding who took it. A waiter polls; a lock
 * whose holder died (same host, pid gone) is taken over. Used for stage
 * cache entries and for an output folder's SHA256SUMS.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { tempPathFor } from './fs.ts';

export interface LockHolder {
  pid: number;
  host: string;
  started: string;
  /** What the holder is doing, for the waiter's message. */
  profile: string;
}

export interface Lock {
  release(): Promise<void>;
}

/** Same host and pid not running: stale. Another host: stale after a day (no way to ask it). */
export function lockIsStale(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return Date.now() - Date.parse(holder.started) > 24 * 3_600_000;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export async function readLock(path: string): Promise<LockHolder | undefined> {
  return readFile(path, 'utf8').then((t) => JSON.parse(t) as LockHolder, () => undefined);
}

export async function acquireLock(
  path: string,
  holder: Pick<LockHolder, 'profile'>,
  options: { signal?: AbortSignal; onWait?: (by: LockHolder) => void; pollMs?: number } = {},
): Promise<Lock> {
  const mine: LockHolder = { pid: process.pid, host: hostname(), started: new Date().toISOString(), ...holder };
  await mkdir(dirname(path), { recursive: true });
  let told = false;
  for (;;) {
    if (options.signal?.aborted) throw options.signal.reason;
    try {
      const handle = await open(path, 'wx');
      await handle.writeFile(JSON.stringify(mine));
      await handle.close();
      return { release: () => rm(path, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const other = await readLock(path);
    if (other && lockIsStale(other)) {
      // Rename first so two waiters cannot both delete a fresh lock.
      const grave = tempPathFor(path);
      await rename(path, grave).then(() => rm(grave, { force: true }), () => undefined);
      continue;
    }
    if (other && !told) {
      told = true;
      options.onWait?.(other);
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 1000));
  }
}
