/**
 * Profile loading: read → resolve `extends` and relative paths → validate with
 * the schema → cross-field rules. Every problem comes back as a Diagnostic
 * located in the file that wrote the field.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import type { z } from 'zod';
import { shownKey, type Diagnostic } from './diagnostic.ts';
import { mergeLayers, type Layer } from './merge.ts';
import { checkRules } from './rules.ts';
import { allowedKeys } from './schema-walk.ts';
import { profileSchema, type Profile } from './schema.ts';
import { readSource, SourceError, type FieldPath, type Locations } from './source.ts';
import { closest } from './suggest.ts';

export interface LoadedProfile {
  profile: Profile;
  /** The profile file given, then every file it extends. */
  files: string[];
  locations: Locations;
}

export type LoadResult = { ok: true; value: LoadedProfile } | { ok: false; diagnostics: Diagnostic[] };

/** Fields holding host paths; relative ones are resolved from the file that wrote them. */
function resolvePaths(data: unknown, dir: string): void {
  if (typeof data !== 'object' || data === null) return;
  const d = data as Record<string, any>;
  const fix = (value: unknown) => (typeof value === 'string' && !isAbsolute(value) ? resolve(dir, value) : value);
  if (d.base?.image && typeof d.base.image === 'object' && 'path' in d.base.image) {
    d.base.image.path = fix(d.base.image.path);
  }
  if (d.base?.builder && typeof d.base.builder === 'object' && 'path' in d.base.builder) d.base.builder.path = fix(d.base.builder.path);
  if (Array.isArray(d.apps)) for (const app of d.apps) if (app && typeof app === 'object') app.src = fix(app.src);
  if (d.cloudInit && typeof d.cloudInit.userData === 'string') d.cloudInit.userData = fix(d.cloudInit.userData);
}

async function readLayer(file: string, chain: string[], diagnostics: Diagnostic[]): Promise<Layer & { files: string[] }> {
  const source = await readSource(file);
  const data = source.data as Record<string, unknown>;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new SourceError([{ location: source.locations.find([])!, path: [], message: 'a profile must be a YAML mapping' }]);
  }
  resolvePaths(data, dirname(file));
  const parentRef = data.extends;
  delete data.extends;
  const layer = { data, locations: source.locations, files: [file] };
  if (parentRef !== undefined && (typeof parentRef !== 'string' || parentRef === '')) {
    diagnostics.push({ location: source.locations.find(['extends'])!, path: ['extends'], message: `extends takes a profile file path, not ${JSON.stringify(parentRef)}` });
    return layer;
  }
  if (typeof parentRef !== 'string') return layer;
  const parentFile = resolve(dirname(file), parentRef);
  if (chain.includes(parentFile)) {
    diagnostics.push({
      location: source.locations.find(['extends'])!,
      path: ['extends'],
      message: `extends loops back to ${parentRef}`,
    });
    return layer;
  }
  const parent = await readLayer(parentFile, [...chain, parentFile], diagnostics);
  const merged = mergeLayers(parent, layer);
  return { ...merged, files: [file, ...parent.files] };
}

function hintFor(schema: z.ZodType, issue: z.core.$ZodIssue, data: unknown): { message: string; hint?: string; preferKey: boolean; path: FieldPath } {
  const path = issue.path as FieldPath;
  if (issue.code === 'unrecognized_keys') {
    const known = allowedKeys(schema as Parameters<typeof allowedKeys>[0], path, data);
    const key = issue.keys[0] ?? '';
    const guess = closest(key, known);
    return {
      path: [...path, key],
      message: `unknown key "${shownKey(key)}"${issue.keys.length > 1 ? ` (and ${issue.keys.slice(1).map(shownKey).join(', ')})` : ''}`,
      hint: guess ? `did you mean "${guess}"?` : known.length ? `allowed here: ${known.join(', ')}` : undefined,
      preferKey: true,
    };
  }
  if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator) {
    return { path, message: issue.message, hint: `one of: ${(issue as { options?: unknown[] }).options?.join(', ')}`, preferKey: false };
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return { path, message: `required field missing (expected ${issue.expected})`, preferKey: true };
  }
  return { path, message: issue.message, preferKey: false };
}

/** Validate data with a schema; every issue becomes a Diagnostic located where the field was written. */
export function parseLocated<S extends z.ZodType>(schema: S, data: unknown, locations: Locations): { ok: true; data: z.output<S> } | { ok: false; diagnostics: Diagnostic[] } {
  const parsed = schema.safeParse(data, { reportInput: true });
  if (parsed.success) return { ok: true, data: parsed.data };
  const diagnostics = parsed.error.issues.map((issue): Diagnostic => {
    const { path, message, hint, preferKey } = hintFor(schema, issue, data);
    return { location: locations.find(path, preferKey)!, path, message, ...(hint ? { hint } : {}) };
  });
  return { ok: false, diagnostics };
}

export async function loadProfile(file: string): Promise<LoadResult> {
  const absolute = resolve(file);
  const diagnostics: Diagnostic[] = [];
  let layer: Layer & { files: string[] };
  try {
    layer = await readLayer(absolute, [absolute], diagnostics);
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
  return { ok: true, value: { profile: parsed.data, files: layer.files, locations: layer.locations } };
}
