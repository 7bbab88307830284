import { readFile } from 'node:fs/promises';
import { shippedProfiles } from './helpers/shipped.ts';
import { withBootTrimTable, withVerifyTables } from '../src/verify/table.ts';
import { join, resolve } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { renderJsonSchema } from '../src/loader/json-schema.ts';
import { renderReference } from '../src/profile/reference.ts';

const root = resolve(import.meta.dirname, '..');
const schema = suite('json schema');
schema('schema/profile.schema.json is what the zod schema generates (npm run schema)', async () => {
  const committed = await readFile(join(root, 'schema', 'profile.schema.json'), 'utf8');
  assert.is(committed, renderJsonSchema(), 'schema/profile.schema.json is stale: run npm run schema');
});
schema('docs/profile-reference.md is what the schema generates', async () => {
  const committed = await readFile(join(root, 'docs', 'profile-reference.md'), 'utf8');
  assert.ok(committed.endsWith(renderReference(JSON.parse(renderJsonSchema()))), 'stale: run npm run schema');
  assert.match(committed, /\| `disk\.size` \| string \| `"8G"` \|/);
});
schema('schema/cluster.schema.json and docs/cluster-reference.md are what the cluster schema generates', async () => {
  assert.is(await readFile(join(root, 'schema', 'cluster.schema.json'), 'utf8'), renderJsonSchema('cluster'), 'stale: run npm run schema');
  const reference = await readFile(join(root, 'docs', 'cluster-reference.md'), 'utf8');
  assert.ok(reference.endsWith(renderReference(JSON.parse(renderJsonSchema('cluster')))), 'stale: run npm run schema');
  assert.match(reference, /\| `vm\.cpu` \| string \| `"Penryn"` \|/);
  assert.match(await readFile(join(root, 'clusters', 'vtorque.yaml'), 'utf8'), /^# yaml-language-server: \$schema=\.\.\/schema\/cluster\.schema\.json$/m);
});
schema('every shipped profile points editors at the schema', async () => {
  assert.ok(shippedProfiles.length >= 5, shippedProfiles.map((p) => p.name).join(', '));
  for (const { name, file } of shippedProfiles) {
    const text = await readFile(file, 'utf8');
    assert.match(text, /^# yaml-language-server: \$schema=\.\.\/schema\/profile\.schema\.json$/m, name);
  }
});
schema('the docs\' generated tables match the verify rule and boot trim records', async () => {
  const verify = await readFile(join(root, 'docs', 'verify.md'), 'utf8');
  assert.is(verify, withVerifyTables(verify), 'docs/verify.md rule or sysprep table is stale: run npm run schema');
  assert.match(verify, /\| `layout\.opt-empty` \|/);
  const boot = await readFile(join(root, 'docs', 'boot.md'), 'utf8');
  assert.is(boot, withBootTrimTable(boot), 'docs/boot.md trim table is stale: run npm run schema');
  assert.match(boot, /\| `ucx-no-rocm` \|/);
});
schema.run();
