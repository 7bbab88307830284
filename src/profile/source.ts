/**
 * Reads one profile file into plain data plus a map from each field path to
 * where it was written, so errors found after merging still point at the
 * right file, line and column.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { relative } from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import type { Diagnostic, Location } from './diagnostic.ts';

export type FieldPath = readonly (string | number)[];

/** Field path → location; `key` entries point at a map key, `value` at its value. */
export class Locations {
  private readonly values = new Map<string, Location>();
  private readonly keys = new Map<string, Location>();

  static id(path: FieldPath): string {
    return JSON.stringify(path);
  }

  set(path: FieldPath, value: Location, key?: Location): void {
    this.values.set(Locations.id(path), value);
    if (key) this.keys.set(Locations.id(path), key);
  }

  /** The location of path, or of its nearest written ancestor. */
  find(path: FieldPath, preferKey = false): Location | undefined {
    for (let n = path.length; n >= 0; n -= 1) {
      const id = Locations.id(path.slice(0, n));
      const hit = (preferKey && this.keys.get(id)) || this.values.get(id);
      if (hit) return hit;
    }
    return undefined;
  }

  /** Copy every entry under `from` (in other) to under `to` here. */
  graft(other: Locations, from: FieldPath, to: FieldPath): void {
    const prefix = Locations.id(from).slice(0, -1);
    for (const [table, mine] of [
      [other.values, this.values],
      [other.keys, this.keys],
    ] as const) {
      for (const [id, loc] of table) {
        if (id === Locations.id(from) || id.startsWith(`${prefix},`) || (from.length === 0 && id.startsWith('['))) {
          const rest = (JSON.parse(id) as FieldPath).slice(from.length);
          mine.set(Locations.id([...to, ...rest]), loc);
        }
      }
    }
  }
}

export interface Source {
  file: string;
  /** Path shown in messages: relative to the working directory. */
  shown: string;
  data: unknown;
  locations: Locations;
}

export class SourceError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map((d) => d.message).join('; '));
  }
}

/** Profiles and cluster descriptions are small: anything bigger is a mistake or an attack. */
export const maxSourceBytes = 1024 * 1024;

export async function readSource(file: string): Promise<Source> {
  const shown = relative(process.cwd(), file) || file;
  const refuse = (message: string): never => {
    throw new SourceError([{ location: { file: shown, line: 1, col: 1 }, path: [], message }]);
  };
  let bytes: Buffer;
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) =>
    refuse(error.code === 'ENOENT' ? 'file not found' : error.code === 'ENAMETOOLONG' ? 'file name too long' : `cannot read: ${error.code ?? String(error)}`));
  try {
    const st = await handle.stat();
    if (!st.isFile()) refuse(`not a regular file (${st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a FIFO' : 'a device or socket'})`);
    if (st.size > maxSourceBytes) refuse(`${st.size} bytes: larger than ${maxSourceBytes / 1024} KiB, not a profile`);
    bytes = Buffer.alloc(st.size);
    await handle.read(bytes, 0, st.size, 0);
  } catch (error) {
    if (error instanceof SourceError) throw error;
    return refuse(`cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  } finally {
    await handle.close();
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return refuse('not UTF-8 text');
  }
  return parseSource(text, file, shown);
}

export function parseSource(text: string, file: string, shown = file): Source {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): Location => {
    const pos = lineCounter.linePos(offset);
    return { file: shown, line: pos.line, col: pos.col };
  };
  if (doc.errors.length > 0) {
    throw new SourceError(
      doc.errors.map((e) => ({ location: at(e.pos[0]), path: [], message: `YAML: ${e.message.split('\n')[0]}` })),
    );
  }
  const locations = new Locations();
  const walk = (node: unknown, path: FieldPath, keyLoc?: Location) => {
    const n = node as Node | null;
    if (n?.range) locations.set(path, at(n.range[0]), keyLoc);
    if (isMap(n)) {
      for (const pair of n.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const keyNode = pair.key as Node | null;
        const kl = keyNode?.range ? at(keyNode.range[0]) : undefined;
        if (pair.value === null && kl) locations.set([...path, key], kl, kl);
        walk(pair.value, [...path, key], kl);
      }
    } else if (isSeq(n)) {
      n.items.forEach((item, index) => walk(item, [...path, index]));
    }
  };
  walk(doc.contents, []);
  if (!locations.find([])) locations.set([], { file: shown, line: 1, col: 1 });
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (error) {
    // An alias bomb ("billion laughs") and the like: a located error, not a crash.
    throw new SourceError([{ location: { file: shown, line: 1, col: 1 }, path: [], message: `YAML: ${(error as Error).message.split('\n')[0]}` }]);
  }
  return { file, shown, data, locations };
}
