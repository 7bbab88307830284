/**
 * Cluster descriptions (rehearse's input) from elsewhere: every bad value is
 * refused with file:line:col and the field, before anything is started.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadClusterOrThrow } from '../src/cluster/load.ts';
import { mountPathProblem } from '../src/cluster/schema.ts';

const tmp = await mkdtemp(join(tmpdir(), 'gf-cluster-'));

async function refused(yaml: string): Promise<string> {
  const file = join(tmp, 'c.yaml');
  await writeFile(file, yaml);
  try {
    await loadClusterOrThrow(file);
  } catch (error) {
    const e = error as Error & { hint?: string };
    return `${e.message}\n${e.hint ?? ''}`;
  }
  throw new Error(`accepted:\n${yaml}`);
}

test('the shipped description and an empty one load, with vTorque defaults', async () => {
  const c = await loadClusterOrThrow();
  assert.is(c.seed.instanceId, 'fixed');
  assert.is(c.vm.cpu, 'Penryn');
  const file = join(tmp, 'min.yaml');
  await writeFile(file, 'name: min\n');
  assert.is((await loadClusterOrThrow(file)).nfs.software.mount, '/opt');
});

test('mount points: system folders, "..", unknown placeholders, nesting and duplicates are refused', async () => {
  for (const [path, want] of [
    ['/', /plain path/], ['/etc/cron.d', /system folder \/etc/], ['/home/../etc', /"\.\."/], ['/home/{user}', /unknown placeholder \{user\}/],
    ['/work space', /absolute guest path/], ['/usr', /the guest's system folder/], ['/home/{owner', /unknown placeholder/],
  ] as const) assert.match(mountPathProblem(path) ?? 'accepted', want, path);
  for (const ok of ['/opt', '/home/{owner}', '/workspace', '/srv/soft-1.2']) assert.is(mountPathProblem(ok), undefined, ok);

  const bad = await refused('name: c\nnfs:\n  home:\n    mount: /var/lib/x\n');
  assert.match(bad, /c\.yaml:4:\d+/);
  assert.match(bad, /nfs\.home\.mount/);
  assert.match(await refused('name: c\nnfs:\n  workspace:\n    mount: /opt/ws\n'), /nests with the mount point of (software|workspace)/);
  assert.match(await refused('name: c\nnfs:\n  home:\n    mount: /workspace\n'), /is also the mount point/);
});

test('job.expect must be a regular expression; vm.memory at least 256M', async () => {
  const expect = await refused('name: c\njob:\n  expect: "(unclosed"\n');
  assert.match(expect, /c\.yaml:3:\d+/);
  assert.match(expect, /job\.expect.*not a valid JavaScript regular expression/);
  assert.match(await refused('name: c\nvm:\n  memory: "512"\n'), /vm\.memory.*at least 256M/);
  assert.match(await refused('name: c\nvm:\n  memory: 1G,share=on\n'), /vm\.memory/);
});

test.after(() => rm(tmp, { recursive: true, force: true }));
test.run();
