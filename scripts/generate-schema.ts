// Writes schema/profile.schema.json and docs/profile-reference.md from the zod schema,
// and the generated tables of docs/verify.md (rule records) and docs/boot.md (boot trims).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderJsonSchema } from '../src/loader/json-schema.ts';
import { renderReference } from '../src/profile/reference.ts';
import { projectRoot } from '../src/util/project.ts';
import { withBootTrimTable, withVerifyTables } from '../src/verify/table.ts';

const json = renderJsonSchema();
await writeFile(join(projectRoot, 'schema', 'profile.schema.json'), json);
await writeFile(join(projectRoot, 'docs', 'profile-reference.md'), `# Profile reference\n\nGenerated from src/profile/schema.ts by \`npm run schema\`; do not edit.\n\n${renderReference(JSON.parse(json))}`);
const cluster = renderJsonSchema('cluster');
await writeFile(join(projectRoot, 'schema', 'cluster.schema.json'), cluster);
await writeFile(join(projectRoot, 'docs', 'cluster-reference.md'), `# Cluster description reference\n\nGenerated from src/cluster/schema.ts by \`npm run schema\`; do not edit.\n\n${renderReference(JSON.parse(cluster))}`);
console.log('wrote schema/{profile,cluster}.schema.json and docs/{profile,cluster}-reference.md');

for (const [doc, update] of [['verify.md', withVerifyTables], ['boot.md', withBootTrimTable]] as const) {
  const path = join(projectRoot, 'docs', doc);
  await writeFile(path, update(await readFile(path, 'utf8')));
}
console.log('wrote the generated tables of docs/verify.md and docs/boot.md');
