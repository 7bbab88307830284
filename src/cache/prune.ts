/**
 * Which cache entries to remove. An entry backs its children, so removing
 * one removes its descendants with it; entries a running build holds (and
 * the chain under them) stay. Entries whose parent is gone or was remade
 * can never be used again and always go.
 */
import type { Entry } from './store.ts';

export interface PruneRules {
  /** Remove entries not used for this long (ms). */
  olderThanMs?: number;
  /** Then remove least recently used entries until the rest fit. */
  keepBytes?: number;
  now?: number;
}

export interface PruneChoice {
  entry: Entry;
  reason: string;
}

const nodeOf = (e: Pick<Entry, 'stage' | 'key'>) => `${e.stage}-${e.key}`;

/** `busy`: paths of entries a running build's disks are backed by. */
export function choosePrune(entries: Entry[], rules: PruneRules, busy: Set<string> = new Set()): PruneChoice[] {
  const now = rules.now ?? Date.now();
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const children = new Map<string, Entry[]>();
  for (const e of entries) {
    if (!e.parent) continue;
    const list = children.get(e.parent.path) ?? [];
    list.push(e);
    children.set(e.parent.path, list);
  }
  const chosen = new Map<string, PruneChoice>();
  const take = (e: Entry, reason: string) => {
    if (chosen.has(e.path)) return;
    chosen.set(e.path, { entry: e, reason });
    for (const child of children.get(e.path) ?? []) take(child, `backed by ${nodeOf(e)}, which goes`);
  };

  for (const e of entries) {
    if (!e.parent || !e.parent.path.includes('/stages/')) continue;
    const parent = byPath.get(e.parent.path);
    if (!parent || parent.id !== e.parent.id) take(e, 'its parent entry is gone or was remade');
  }
  const filtered = rules.olderThanMs === undefined && rules.keepBytes === undefined;
  for (const e of entries) {
    if (filtered) take(e, 'prune without limits removes every entry');
    else if (rules.olderThanMs !== undefined && now - Date.parse(e.lastUsed) > rules.olderThanMs) take(e, `last used ${e.lastUsed}`);
  }
  if (rules.keepBytes !== undefined) {
    const remaining = () => entries.filter((e) => !chosen.has(e.path)).reduce((sum, e) => sum + e.bytes, 0);
    const oldestFirst = [...entries].sort((a, b) => a.lastUsed.localeCompare(b.lastUsed));
    for (const e of oldestFirst) {
      if (remaining() <= rules.keepBytes) break;
      take(e, `least recently used, over the ${rules.keepBytes}-byte budget`);
    }
  }
  // Never pull a disk from under a running build: keep busy entries and what backs them.
  const keep = new Set<string>();
  const keepChain = (e: Entry | undefined) => {
    for (let c = e; c && !keep.has(c.path); c = c.parent ? byPath.get(c.parent.path) : undefined) keep.add(c.path);
  };
  for (const e of entries) if (busy.has(e.path)) keepChain(e);
  return [...chosen.values()].filter((c) => !keep.has(c.entry.path));
}
