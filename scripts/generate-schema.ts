// Writes schema/profile.schema.json and docs/profile-reference.md from the zod schema,
// and the README's verify rule table from the rule records.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderJsonSchema } from '../src/profile/json-schema.ts';
import { renderReference } from '../src/profile/reference.ts';
import { projectRoot } from '../src/util/project.ts';
import { withRuleTable } from '../src/verify/table.ts';

const json = renderJsonSchema();
await writeFile(join(projectRoot, 'schema', 'profile.schema.json'), json);
await writeFile(join(projectRoot, 'docs', 'profile-reference.md'), `# Profile reference\n\nGenerated from src/profile/schema.ts by \`npm run schema\`; do not edit.\n\n${renderReference(JSON.parse(json))}`);
console.log('wrote schema/profile.schema.json and docs/profile-reference.md');

const readmePath = join(projectRoot, 'README.md');
await writeFile(readmePath, withRuleTable(await readFile(readmePath, 'utf8')));
console.log('wrote the verify rule table in README.md');
