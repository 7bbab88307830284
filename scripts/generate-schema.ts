// Writes schema/profile.schema.json from the zod schema (the one source of truth).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderJsonSchema } from '../src/profile/json-schema.ts';
import { projectRoot } from '../src/util/project.ts';

await writeFile(join(projectRoot, 'schema', 'profile.schema.json'), renderJsonSchema());
console.log('wrote schema/profile.schema.json');
