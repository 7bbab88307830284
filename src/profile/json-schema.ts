import { z } from 'zod';
import { profileSchema } from './schema.ts';

/** The committed JSON Schema, for editors (yaml-language-server) and docs. */
export function renderJsonSchema(): string {
  return `${JSON.stringify(z.toJSONSchema(profileSchema, { io: 'input', unrepresentable: 'any' }), null, 2)}\n`;
}
