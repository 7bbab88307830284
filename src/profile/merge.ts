/**
 * The `extends` merge rule: maps deep-merge, lists append, scalars override.
 * Locations move with the values so that errors point at the writing file.
 */
import { Locations, type FieldPath } from './source.ts';

export interface Layer {
  data: unknown;
  locations: Locations;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function mergeLayers(base: Layer, over: Layer): Layer {
  const locations = new Locations();
  const merge = (a: unknown, b: unknown, path: FieldPath): unknown => {
    if (b === undefined) {
      locations.graft(base.locations, path, path);
      return a;
    }
    if (isPlainObject(a) && isPlainObject(b)) {
      locations.graft(over.locations, path, path);
      const out: Record<string, unknown> = {};
      for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
        if (key in b) out[key] = key in a ? merge(a[key], b[key], [...path, key]) : take(over, b[key], [...path, key]);
        else out[key] = take(base, a[key], [...path, key]);
      }
      return out;
    }
    if (Array.isArray(a) && Array.isArray(b)) {
      locations.graft(over.locations, path, path);
      a.forEach((_, i) => locations.graft(base.locations, [...path, i], [...path, i]));
      b.forEach((_, i) => locations.graft(over.locations, [...path, i], [...path, a.length + i]));
      return [...a, ...b];
    }
    return take(over, b, path);
  };
  const take = (from: Layer, value: unknown, path: FieldPath): unknown => {
    locations.graft(from.locations, path, path);
    return value;
  };
  const data = merge(base.data, over.data, []);
  return { data, locations };
}
