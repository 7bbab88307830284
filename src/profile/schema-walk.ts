/** Finds the object schema at a field path, to list the keys it allows. */
import type { z } from 'zod';

type AnySchema = z.ZodType;

interface Def {
  type: string;
  innerType?: AnySchema;
  shape?: Record<string, AnySchema>;
  element?: AnySchema;
  options?: AnySchema[];
  discriminator?: string;
  in?: AnySchema;
  valueType?: AnySchema;
}

const def = (schema: AnySchema): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

function unwrap(schema: AnySchema, value: unknown): AnySchema {
  let current = schema;
  for (;;) {
    const d = def(current);
    if (d.innerType) current = d.innerType;
    else if (d.type === 'pipe' && d.in) current = d.in;
    else if (d.type === 'union' && d.options) {
      const disc = d.discriminator;
      const wanted = disc && typeof value === 'object' && value ? (value as Record<string, unknown>)[disc] : undefined;
      const match = d.options.find((o) => {
        const shape = def(unwrap(o, undefined)).shape;
        const lit = disc && shape?.[disc] ? (def(shape[disc]) as { values?: unknown[] }).values : undefined;
        return lit?.includes(wanted);
      });
      const objects = d.options.filter((o) => def(unwrap(o, undefined)).type === 'object');
      const next = match ?? (objects.length === 1 ? objects[0] : undefined);
      if (!next) return current;
      current = next;
    } else return current;
  }
}

/** Keys allowed at `path` of `root`, given the data (to pick a union branch). */
export function allowedKeys(root: AnySchema, path: readonly (string | number)[], data: unknown): string[] {
  let schema = unwrap(root, data);
  let value = data;
  for (const part of path) {
    value = typeof value === 'object' && value !== null ? (value as Record<string | number, unknown>)[part] : undefined;
    const d = def(schema);
    const next = typeof part === 'number' ? d.element : (d.shape?.[part] ?? d.valueType);
    if (!next) return [];
    schema = unwrap(next, value);
  }
  return Object.keys(def(schema).shape ?? {});
}
