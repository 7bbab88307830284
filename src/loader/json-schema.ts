import { z } from 'zod';
import { clusterSchema } from '../cluster/schema.ts';
import { profileSchema } from '../profile/schema.ts';

/** The committed JSON Schemas, for editors (yaml-language-server) and docs: profiles, or cluster descriptions. */
export function renderJsonSchema(which: 'profile' | 'cluster' = 'profile'): string {
  const schema = which === 'profile' ? profileSchema : clusterSchema;
  return `${JSON.stringify(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }), null, 2)}\n`;
}
