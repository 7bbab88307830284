/**
 * An exclusive lock on a file, held by the kernel: flock(2) on an open file
 * description, taken by util-linux's flock(1) on a descriptor we pass it (a
 * lock belongs to the open file description, so it stays ours after flock(1)
 * exits, and the kernel drops it when we close the file or die). No pid
 * guessing, no takeover race: a dead holder's lock is simply free.
 *
 * The file's content (who holds it) is only for the waiter's message; a
 * half-written or empty file reads as "unknown holder". The file stays after
 * release (waiters blocked on it then get it without a retry) unless
 * `removeOnRelease`: then it is unlinked while still held, and a waiter that
 * gets the lock on the unlinked file sees that its inode is no longer the
 * path's and retries; anyone may delete a lock file the same way.
 *
 * Used for stage cache entries and an output folder's SHA256SUMS.
 */
import { UsageError } from '../errors.ts';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rm, stat, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { run } from './run.ts';

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

/**
 * For owner.json of work folders (not a lock, a note): same host and pid not
 * running is stale; another host: stale after a day (no way to ask it).
 */
export function lockIsStale(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return Date.now() - Date.parse(holder.started) > 24 * 3_600_000;
  return !pidAlive(holder.pid);
}

/** A process of this host runs with this pid (one we may not signal counts as running). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Pure: a holder record from a file's text, or undefined for empty, half-written or foreign text. */
export function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder> | null;
    if (!v || typeof v !== 'object' || !Number.isInteger(v.pid) || typeof v.host !== 'string' || typeof v.started !== 'string') return undefined;
    return { pid: v.pid!, host: v.host, started: v.started, profile: typeof v.profile === 'string' ? v.profile : '?' };
  } catch {
    return undefined;
  }
}

export async function readLock(path: string): Promise<LockHolder | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : parseHolder(text);
}

const openFlags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;

/**
 * flock(1) on our descriptor: true when taken. `waitSeconds` undefined blocks
 * until it is (or the signal aborts); a number gives up after that long.
 */
async function flockFd(handle: FileHandle, waitSeconds: number | undefined, signal?: AbortSignal): Promise<boolean> {
  const r = await run(['flock', ...(waitSeconds === undefined ? [] : ['-w', String(waitSeconds)]), '-x', '3'], { passFds: [handle.fd], allowFailure: true, cancelSignal: signal });
  if (signal?.aborted) throw signal.reason;
  if (r.exitCode === 0) return true;
  if (r.exitCode === 1 && waitSeconds !== undefined) return false;
  throw new Error(`flock(1) failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
}

async function samePath(handle: FileHandle, path: string): Promise<boolean> {
  const [mine, now] = [await handle.stat(), await stat(path).catch(() => undefined)];
  return now !== undefined && now.ino === mine.ino && now.dev === mine.dev;
}

export async function acquireLock(
  path: string,
  holder: Pick<LockHolder, 'profile'>,
  options: { signal?: AbortSignal; onWait?: (by: LockHolder) => void; removeOnRelease?: boolean } = {},
): Promise<Lock> {
  const mine: LockHolder = { pid: process.pid, host: hostname(), started: new Date().toISOString(), ...holder };
  await mkdir(dirname(path), { recursive: true });
  let told = false;
  for (;;) {
    if (options.signal?.aborted) throw options.signal.reason;
    const handle = await open(path, openFlags, 0o600).catch((error: NodeJS.ErrnoException) => {
      // O_NOFOLLOW: a link put where the lock goes is not followed, and said as such.
      if (error.code === 'ELOOP' || error.code === 'EISDIR' || error.code === 'ENXIO') {
        throw new UsageError(`${path}: the lock file is ${error.code === 'ELOOP' ? 'a symbolic link' : 'not a regular file'}; it is not opened through`, { hint: `remove it if nothing of yours made it: rm ${path}` });
      }
      throw error;
    });
    try {
      // O_RDWR opens a FIFO without error: a lock is a regular file or nothing.
      if (!(await handle.stat()).isFile()) throw new UsageError(`${path}: the lock file is not a regular file; it is not used`, { hint: `remove it if nothing of yours made it: rm ${path}` });
      // One spawn when the lock is free or soon free; the waiter's message after a second.
      if (!(await flockFd(handle, 1, options.signal))) {
        const other = await readLock(path);
        if (!told) {
          told = true;
          options.onWait?.(other ?? { pid: 0, host: '?', started: '?', profile: '?' });
        }
        await flockFd(handle, undefined, options.signal);
      }
      if (!(await samePath(handle, path))) {
        await handle.close();
        continue; // the holder released (unlinked) it while we waited: lock the path's new file
      }
      await handle.truncate(0);
      await handle.write(JSON.stringify(mine), 0);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    return heldLock(handle, path, options.removeOnRelease ?? false);
  }
}

function heldLock(handle: FileHandle, path: string, removeOnRelease: boolean): Lock {
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      try {
        if (removeOnRelease && (await samePath(handle, path))) await rm(path, { force: true });
        else await handle.truncate(0);
      } finally {
        await handle.close(); // closing is what lets go of the lock
      }
    },
  };
}

/**
 * Take the lock only if it is free right now (cache prune: an entry someone
 * holds is in use). The file is removed on release: whoever waits on it
 * re-checks the inode and retries.
 */
export async function tryLock(path: string, holder: Pick<LockHolder, 'profile'>): Promise<Lock | undefined> {
  const handle = await open(path, openFlags, 0o600).catch(() => undefined);
  if (!handle) return undefined;
  const r = await run(['flock', '-n', '-x', '3'], { passFds: [handle.fd], allowFailure: true });
  if (r.exitCode !== 0 || !(await samePath(handle, path))) {
    await handle.close();
    return undefined;
  }
  await handle.truncate(0);
  await handle.write(JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString(), ...holder }), 0);
  return heldLock(handle, path, true);
}

/** Who holds the lock at `path` now, or undefined when nobody does (a free lock file is just a file). */
export async function lockHolder(path: string): Promise<LockHolder | undefined> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => undefined);
  if (!handle) return undefined;
  try {
    const r = await run(['flock', '-n', '-s', '3'], { passFds: [handle.fd], allowFailure: true });
    if (r.exitCode === 0) return undefined; // we could take it: nobody holds it
    return (await readLock(path)) ?? { pid: 0, host: '?', started: '?', profile: '?' };
  } finally {
    await handle.close();
  }
}
