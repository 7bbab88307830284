/**
 * Profile loading: read → resolve host paths to real paths inside the file's
 * folder (host-paths.ts) → `extends` → validate with the schema → cross-field
 * rules. Every problem comes back as a Diagnostic located in the file that
 * wrote the field.
 */
import { dirname, resolve } from 'node:path';
import type { Diagnostic } from '../profile/diagnostic.ts';
import { confineHostPaths, realPathOf } from '../profile/host-paths.ts';
import { parseLocated } from '../profile/located.ts';
import { mergeLayers, type Layer } from '../profile/merge.ts';
import { profileSchema, type Profile } from '../profile/schema.ts';
import { readSource, SourceError, type Locations } from '../profile/source.ts';
import { checkRules } from './rules.ts';

export interface LoadOptions {
  /** Folders besides each profile file's own that its host files may be in (--allow-host-path). */
  allowHostPaths?: readonly string[];
}

export interface LoadedProfile {
  profile: Profile;
  /** The profile file given, then every file it extends (real paths). */
  files: string[];
  locations: Locations;
  /** The allowed folders outside the profiles' own, as real paths (the resume line of a kept build repeats them: its record does not hold them). */
  allowHostPaths: string[];
}

export type LoadResult = { ok: true; value: LoadedProfile } | { ok: false; diagnostics: Diagnostic[] };

/** One file and what it extends; `file` is a real path, and host paths are confined to its folder (extends before it is read). */
async function readLayer(file: string, chain: string[], allowed: readonly string[], diagnostics: Diagnostic[]): Promise<Layer & { files: string[] }> {
  const source = await readSource(file);
  const data = source.data as Record<string, unknown>;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new SourceError([{ location: source.locations.find([])!, path: [], message: 'a profile must be a YAML mapping' }]);
  }
  const refused = await confineHostPaths(data, dirname(file), allowed, source.locations);
  diagnostics.push(...refused);
  const parentRef = data.extends;
  delete data.extends;
  const layer = { data, locations: source.locations, files: [file] };
  if (parentRef !== undefined && (typeof parentRef !== 'string' || parentRef === '')) {
    diagnostics.push({ location: source.locations.find(['extends'])!, path: ['extends'], message: `extends takes a profile file path, not ${JSON.stringify(parentRef)}` });
    return layer;
  }
  if (typeof parentRef !== 'string' || refused.some((d) => d.path[0] === 'extends')) return layer;
  if (chain.includes(parentRef)) {
    diagnostics.push({
      location: source.locations.find(['extends'])!,
      path: ['extends'],
      message: `extends loops back to ${parentRef}`,
    });
    return layer;
  }
  const parent = await readLayer(parentRef, [...chain, parentRef], allowed, diagnostics);
  const merged = mergeLayers(parent, layer);
  return { ...merged, files: [file, ...parent.files] };
}

export async function loadProfile(file: string, options: LoadOptions = {}): Promise<LoadResult> {
  const diagnostics: Diagnostic[] = [];
  const allowed: string[] = [];
  for (const dir of options.allowHostPaths ?? []) {
    const real = await realPathOf(dir);
    if (real !== undefined) allowed.push(real);
  }
  // A missing file or a loop of links: readSource says so, located at the name given.
  const absolute = (await realPathOf(file)) ?? resolve(file);
  let layer: Layer & { files: string[] };
  try {
    layer = await readLayer(absolute, [absolute], allowed, diagnostics);
  } catch (error) {
    if (error instanceof SourceError) return { ok: false, diagnostics: error.diagnostics };
    throw error;
  }
  if (diagnostics.length > 0) return { ok: false, diagnostics };
  const parsed = parseLocated(profileSchema, layer.data, layer.locations);
  if (!parsed.ok) return parsed;
  for (const problem of await checkRules(parsed.data)) {
    diagnostics.push({ location: layer.locations.find(problem.path)!, ...problem });
  }
  if (diagnostics.length > 0) return { ok: false, diagnostics };
  return { ok: true, value: { profile: parsed.data, files: layer.files, locations: layer.locations, allowHostPaths: allowed } };
}
