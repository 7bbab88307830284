/**
 * `guestforge cache ls` and `guestforge cache prune`: the stage cache's
 * entries, their sizes, last use and the profile that made them.
 */
import { existsSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { discardKept, inUse, keptFile, listKept } from '../debug/kept.ts';
import { join } from 'node:path';
import { choosePrune } from '../cache/prune.ts';
import { StageCache, type Entry } from '../cache/store.ts';
import { UsageError } from '../errors.ts';
import { formatSize, parseDuration, parseSize } from '../profile/units.ts';
import { age, textTable } from '../report/table.ts';
import { cacheDir } from '../util/paths.ts';
import { lockIsStale, readLock } from '../exec/lock.ts';
import { parseCommandArgs } from './args.ts';
import { backingFiles } from '../vm/qemu-img.ts';

const out = (s: string) => process.stdout.write(`${s}\n`);

function row(e: Entry, all: Entry[]): string[] {
  const parent = e.parent ? all.find((p) => p.path === e.parent!.path) : undefined;
  return [e.stage, e.key, formatSize(e.bytes), age(e.lastUsed), e.profile, parent ? `${parent.stage}-${parent.key}` : e.parent ? e.parent.path : '-'];
}

/**
 * Entries the disks of running builds (their work folders) are backed by,
 * and the work folders of builds that died (killed hard: no clean-up ran).
 */
async function busyEntries(root: string, going: Set<string>): Promise<{ busy: Set<string>; dead: string[] }> {
  const busy = new Set<string>();
  const dead: string[] = [];
  const work = join(root, 'work');
  for (const dir of await readdir(work).catch(() => [] as string[])) {
    if (going.has(join(work, dir))) continue;
    const owner = await readLock(join(work, dir, 'owner.json'));
    // A kept build's owner has exited, but the build is not dead: its disks stay until discard or --older-than.
    const kept = existsSync(join(work, dir, keptFile));
    if (owner && lockIsStale(owner) && !kept) {
      dead.push(join(work, dir));
      continue;
    }
    for (const name of await readdir(join(work, dir)).catch(() => [] as string[])) {
      if (!name.endsWith('.qcow2')) continue;
      for (const file of (await backingFiles(join(work, dir, name))) ?? []) busy.add(file);
    }
  }
  return { busy, dead };
}

async function ls(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('cache ls', args, { json: { type: 'boolean' } });
  const cache = new StageCache(cacheDir());
  const entries = await cache.list();
  if (values.json) {
    out(JSON.stringify(entries, (k, v) => (k === 'data' ? undefined : v), 2));
    return 0;
  }
  if (entries.length === 0) {
    out(`no entries in ${cache.dir}`);
    return 0;
  }
  for (const line of textTable(['STAGE', 'KEY', 'SIZE', 'LAST USED', 'PROFILE', 'PARENT'], entries.map((e) => row(e, entries)))) out(line);
  out(`${entries.length} entries, ${formatSize(entries.reduce((s, e) => s + e.bytes, 0))} in ${cache.dir}`);
  return 0;
}

async function prune(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('cache prune', args, {
    'older-than': { type: 'string' },
    'keep-bytes': { type: 'string' },
    'dry-run': { type: 'boolean' },
  });
  let olderThanMs: number | undefined;
  let keepBytes: number | undefined;
  try {
    if (values['older-than'] !== undefined) olderThanMs = parseDuration(values['older-than']);
    if (values['keep-bytes'] !== undefined) keepBytes = parseSize(values['keep-bytes']);
  } catch (error) {
    throw new UsageError(`cache prune: ${(error as Error).message}`, { hint: 'durations like 7d, 12h; sizes like 20G, 500M' });
  }
  const root = cacheDir();
  const cache = new StageCache(root);
  const entries = await cache.list();
  const verb = values['dry-run'] ? 'would remove' : 'removed';
  // Kept builds (build --on-error keep, --break) go only when older than --older-than: first, so their disks free the entries under them.
  const going = new Set<string>();
  if (olderThanMs !== undefined) {
    for (const kept of await listKept()) {
      if (Date.now() - Date.parse(kept.since) <= olderThanMs || (await inUse(kept))) continue;
      going.add(kept.workDir);
      if (!values['dry-run']) await discardKept(kept);
      out(`${verb} kept build ${kept.id} (kept ${kept.since}${kept.vm ? '; its VM stopped' : ''})`);
    }
  }
  const { busy, dead } = await busyEntries(root, going);
  const chosen = choosePrune(entries, { ...(olderThanMs !== undefined ? { olderThanMs } : {}), ...(keepBytes !== undefined ? { keepBytes } : {}) }, busy);
  const strays = [];
  for (const path of await cache.strays()) {
    // A stray younger than a few minutes may be a record being written right now.
    if (Date.now() - (await stat(path).then((s) => s.mtimeMs, () => Date.now())) > 10 * 60_000) strays.push(path);
  }
  let freed = 0;
  for (const { entry, reason } of chosen) {
    if (!values['dry-run']) {
      // Removed under its lock: a build that wants it waits, then finds it gone and makes it anew.
      const lock = await cache.tryLock(entry.stage, entry.key);
      if (!lock) continue;
      try {
        await cache.remove(entry.stage, entry.key);
      } finally {
        await lock.release();
      }
    }
    freed += entry.bytes;
    out(`${verb} ${entry.stage}-${entry.key} (${formatSize(entry.bytes)}, ${entry.profile}): ${reason}`);
  }
  for (const path of strays) {
    if (!values['dry-run']) await rm(path, { force: true });
    out(`${verb} ${path}: belongs to no entry`);
  }
  for (const dir of dead) {
    if (!values['dry-run']) await rm(dir, { recursive: true, force: true });
    out(`${verb} ${dir}: work folder of a build that is no longer running`);
  }
  const kept = entries.length - chosen.length;
  out(`${verb} ${chosen.length} entries (${formatSize(freed)}); ${kept} kept`);
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'ls') return ls(rest);
  if (sub === 'prune') return prune(rest);
  throw new UsageError(`cache: expected ls or prune${sub ? `, not "${sub}"` : ''}`, {
    hint: 'guestforge cache ls [--json]\nguestforge cache prune [--older-than 7d] [--keep-bytes 20G] [--dry-run]',
  });
}
