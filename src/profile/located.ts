/** Validation with located diagnostics: every schema issue is placed where its field was written, with a hint (profiles and cluster files). */
import type { z } from 'zod';
import { shownKey, type Diagnostic } from './diagnostic.ts';
import { allowedKeys } from './schema-walk.ts';
import type { FieldPath, Locations } from './source.ts';
import { closest } from './suggest.ts';

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
