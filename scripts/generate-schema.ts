// Writes schema/profile.schema.json and docs/profile-reference.md from the zod schema,
// and the README's verify rule table from the rule records.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderJsonSchema } from '../src/loader/json-schema.ts';
import { renderReference } from '../src/profile/reference.ts';
import { projectRoot } from '../src/util/project.ts';
import { withRuleTable } from '../src/verify/table.ts';

const json = renderJsonSchema();
await writeFile(join(projectRoot, 'schema', 'profile.schema.json'), json);
await writeFile(join(projectRoot, 'docs', 'profile-reference.md'), `# Profile reference\n\nGenerated from src/profile/schema.ts by \`npm run schema\`; do not edit.\n\n${renderReference(JSON.parse(json))}`);
const cluster = renderJsonSchema('cluster');
await writeFile(join(projectRoot, 'schema', 'cluster.schema.json'), cluster);
await writeFile(join(projectRoot, 'docs', 'cluster-reference.md'), `# Cluster description reference\n\nGenerated from src/cluster/schema.ts by \`npm run schema\`; do not edit.\n\n${renderReference(JSON.parse(cluster))}`);
console.log('wrote schema/{profile,cluster}.schema.json and docs/{profile,cluster}-reference.md');

const readmePath = join(projectRoot, 'README.md');
await writeFile(readmePath, withRuleTable(await readFile(readmePath, 'utf8')));
console.log('wrote the verify rule table in README.md');
