/**
 * The stage cache: one qcow2 per stage result, whose backing file is the
 * parent stage's entry (Docker's layers, on what qcow2 already offers).
 *
 *   <cache>/stages/<stage>-<key>.qcow2   the disk (an overlay, or the base)
 *   <cache>/stages/<stage>-<key>.json    its record: inputs, parent, size, last use
 *   <cache>/stages/<stage>-<key>.lock    flock(2)ed while one build makes the entry
 *
 * A key hashes the stage's inputs, the parent's key *and* the parent's
 * entry id (fresh each time an entry is made), and guestforge's version: a
 * parent rebuilt after corruption gets a new id, so no child made on the
 * old bytes is ever used again. Entries are renamed in only after the stage
 * succeeded and `qemu-img check` passed; a record whose size or check does
 * not hold is a miss, and the entry is removed.
 */
import { chmod, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { StageName } from '../model/stage.ts';
import { nonce, sha256Text, writeFileAtomic } from '../util/fs.ts';
import { acquireLock, lockHolder, tryLock, type Lock, type LockHolder } from '../exec/lock.ts';
import { qemuImgCheck } from '../vm/qemu-img.ts';

/** Who a disk in the chain is, for the key of the stage built on it. */
export interface ChainNode {
  key: string;
  id: string;
}

/** What a stage's key hashes: named parts, so a miss can say which changed. */
export type KeyInputs = Record<string, string>;

/** The least a key is computed from: the profile's name names the entries of one profile. */
export interface KeyInputsContext {
  readonly profile: { readonly name: string };
}

/** What the cache asks of a stage (stages/types.ts's Stage is one): its name and, when it is cached, its key's inputs. */
export interface CacheableStage<C extends KeyInputsContext> {
  readonly name: StageName;
  readonly cache?: {
    /** Hashes of everything the stage reads; undefined when this profile's stage is not cached. */
    inputs(ctx: C): Promise<KeyInputs | undefined>;
    /** A stage that is not cached may still name its disk (an image checked by sha256). */
    identity?(ctx: C): ChainNode | undefined;
  };
}

export interface EntryRecord {
  stage: StageName;
  key: string;
  id: string;
  parent?: ChainNode & { path: string };
  /** The profile that made it (entries are shared by any profile with the same inputs). */
  profile: string;
  guestforge: string;
  /** Named input hashes, to say why a later build missed. */
  parts: Record<string, string>;
  bytes: number;
  created: string;
  lastUsed: string;
  /** What the stage needs back on a hit besides the disk (the seal and inject stages' facts). */
  data?: unknown;
}

export interface Entry extends EntryRecord {
  path: string;
}

export type Lookup = { hit: true; entry: Entry } | { hit: false; reason: string };

export function stageKey(stage: StageName, parts: Record<string, string>, parent: ChainNode | undefined, version: string): string {
  const sorted = Object.fromEntries(Object.entries(parts).sort(([a], [b]) => a.localeCompare(b)));
  return sha256Text(JSON.stringify({ stage, parts: sorted, parent: parent ?? null, guestforge: version })).slice(0, 16);
}

export type { Lock, LockHolder } from '../exec/lock.ts';

export class StageCache {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, 'stages');
  }

  pathOf(stage: StageName, key: string): string {
    return join(this.dir, `${stage}-${key}.qcow2`);
  }

  private recordPath(stage: StageName, key: string): string {
    return join(this.dir, `${stage}-${key}.json`);
  }

  private lockPath(stage: StageName, key: string): string {
    return join(this.dir, `${stage}-${key}.lock`);
  }

  async read(stage: StageName, key: string): Promise<Entry | undefined> {
    const text = await readFile(this.recordPath(stage, key), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      return { ...(JSON.parse(text) as EntryRecord), path: this.pathOf(stage, key) };
    } catch {
      return undefined;
    }
  }

  /**
   * A usable entry, or why not, after `qemu-img check`. A broken entry is
   * removed so the build makes it anew, unless `readOnly` (plan): then it is
   * only reported.
   */
  async lookup(stage: StageName, key: string, options: { readOnly?: boolean } = {}): Promise<Lookup> {
    const entry = await this.read(stage, key);
    if (!entry) return { hit: false, reason: 'no entry' };
    const size = await stat(entry.path).then((s) => s.size, () => -1);
    let broken: string | undefined;
    if (size < 0) broken = 'its disk is missing';
    else if (size !== entry.bytes) broken = `its disk is ${size} bytes, the record says ${entry.bytes}`;
    else if (entry.parent && !(await stat(entry.parent.path).then(() => true, () => false))) broken = `its backing file ${entry.parent.path} is gone`;
    else broken = await qemuImgCheck(entry.path);
    if (broken && options.readOnly) return { hit: false, reason: `the cached entry is broken (${broken}); the build will remove and remake it` };
    if (broken) {
      await this.remove(stage, key);
      return { hit: false, reason: `the cached entry was broken (${broken}) and was removed` };
    }
    return { hit: true, entry };
  }

  /** Move a finished stage disk into the cache, after `qemu-img check`. */
  async store(disk: string, record: Omit<EntryRecord, 'id' | 'bytes' | 'created' | 'lastUsed'>): Promise<Entry> {
    const problem = await qemuImgCheck(disk);
    if (problem) throw new Error(`the ${record.stage} stage's disk failed qemu-img check (${problem}); not cached`);
    const path = this.pathOf(record.stage, record.key);
    const now = new Date().toISOString();
    const full: EntryRecord = { ...record, id: nonce(8), bytes: (await stat(disk)).size, created: now, lastUsed: now };
    // The record goes last: a disk without its record is never a hit.
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await rm(this.recordPath(record.stage, record.key), { force: true });
    await chmod(disk, 0o600); // a guest disk: users' hashes, keys, whatever the commands left
    await rename(disk, path);
    await writeFileAtomic(this.recordPath(record.stage, record.key), `${JSON.stringify(full, null, 2)}\n`, 0o600);
    return { ...full, path };
  }

  /** Mark an entry and its ancestors used now (prune goes by last use). */
  async touch(entry: Entry): Promise<void> {
    let current: Entry | undefined = entry;
    for (let depth = 0; current && depth < 16; depth += 1) {
      const updated = { ...current, lastUsed: new Date().toISOString() } as Partial<Entry>;
      delete updated.path;
      await writeFileAtomic(this.recordPath(current.stage, current.key), `${JSON.stringify(updated, null, 2)}\n`, 0o600).catch(() => undefined);
      current = current.parent ? await this.byPath(current.parent.path) : undefined;
    }
  }

  private async byPath(path: string): Promise<Entry | undefined> {
    const m = /([a-z]+)-([0-9a-f]{16})\.qcow2$/.exec(path);
    return m && path.startsWith(this.dir) ? this.read(m[1] as StageName, m[2]!) : undefined;
  }

  async remove(stage: StageName, key: string): Promise<void> {
    await rm(this.recordPath(stage, key), { force: true });
    await rm(this.pathOf(stage, key), { force: true });
  }

  /** Take the entry's lock, waiting while another live build holds it; a dead build's lock is free (the kernel dropped it). */
  lock(stage: StageName, key: string, holder: Pick<LockHolder, 'profile'>, options: { signal?: AbortSignal; onWait?: (by: LockHolder) => void } = {}): Promise<Lock> {
    return acquireLock(this.lockPath(stage, key), holder, options);
  }

  /** The entry's lock if nobody holds it now (prune removes the entry while holding it). */
  tryLock(stage: StageName, key: string): Promise<Lock | undefined> {
    return tryLock(this.lockPath(stage, key), { profile: 'cache prune' });
  }

  async lockHolder(stage: StageName, key: string): Promise<LockHolder | undefined> {
    return lockHolder(this.lockPath(stage, key));
  }

  /** Every entry with a record, newest use first. */
  async list(): Promise<Entry[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const entries: Entry[] = [];
    for (const name of names) {
      const m = /^([a-z]+)-([0-9a-f]{16})\.json$/.exec(name);
      if (!m) continue;
      const entry = await this.read(m[1] as StageName, m[2]!);
      if (entry) entries.push(entry);
    }
    return entries.sort((a, b) => b.lastUsed.localeCompare(a.lastUsed));
  }

  /** Files in the cache folder that belong to no entry (an interrupted store, a disk without record). */
  async strays(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const recorded = new Set((await this.list()).flatMap((e) => [`${e.stage}-${e.key}.qcow2`, `${e.stage}-${e.key}.json`]));
    return names.filter((n) => !recorded.has(n) && !n.endsWith('.lock')).map((n) => join(this.dir, n));
  }

  /** The most recent entry of this stage made for this profile: what a miss is compared with. */
  async previous(stage: StageName, profile: string): Promise<Entry | undefined> {
    return (await this.list()).find((e) => e.stage === stage && e.profile === profile);
  }
}

/** Say which named inputs differ from an earlier entry: the "why" of a miss. */
export function changedParts(now: Record<string, string>, before: Record<string, string>): string[] {
  const names = new Set([...Object.keys(now), ...Object.keys(before)]);
  return [...names].filter((n) => now[n] !== before[n]).sort();
}
