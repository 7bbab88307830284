/**
 * Cluster descriptions (rehearse's input) from elsewhere: every bad value is
 * refused with file:line:col and the field, before anything is started.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadClusterOrThrow } from '../src/cluster/load.ts';
import { mountPathProblem } from '../src/cluster/schema.ts';
import { testBounded } from '../src/util/bounded-regex.ts';

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

test('every shipped description and an empty one load, with vTorque defaults', async () => {
  const c = await loadClusterOrThrow();
  assert.is(c.seed.instanceId, 'fixed');
  assert.is(c.vm.cpu, 'Penryn');
  assert.is(c.nodes.mpiCommand, '/opt-vm/hello-mpi/bin/mpi-job.sh', 'the shipped example\'s rank check, named by the shipped file');
  const shipped = (await readdir(join(import.meta.dirname, '..', 'clusters'))).filter((f) => f.endsWith('.yaml'));
  assert.ok(shipped.length >= 2, shipped.join(', '));
  for (const f of shipped) {
    const loaded = await loadClusterOrThrow(join(import.meta.dirname, '..', 'clusters', f));
    assert.is(loaded.seed.transport, 'virtio-disk', f);
  }
  const hpcc = await loadClusterOrThrow(join(import.meta.dirname, '..', 'clusters', 'vtorque-hpcc.yaml'));
  assert.is(hpcc.nodes.mpiCommand, undefined, 'the admin\'s job only');
  assert.is(hpcc.job.name, 'hpcc');
  assert.is(testBounded(hpcc.job.expect!, '... PASSED\nEnd of HPC Challenge tests.\n'), true);
  assert.is(testBounded(hpcc.job.expect!, '... FAILED\nEnd of HPC Challenge tests.\n'), false);
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

test('job.expect must be a regular expression, job.name a Torque job name; vm.memory at least 256M', async () => {
  // The name becomes the streams' file names in the home export: no slash, no dot first, no shell word.
  for (const bad of ['"../x"', '"a b"', '".hidden"', '"$(id)"', 'abcdefghijklmnop']) {
    assert.match(await refused(`name: c\njob:\n  name: ${bad}\n`), /c\.yaml:3:\d+ job\.name: expected a Torque job name/, bad);
  }
  const expect = await refused('name: c\njob:\n  expect: "(unclosed"\n');
  assert.match(expect, /c\.yaml:3:\d+/);
  assert.match(expect, /job\.expect.*not a valid JavaScript regular expression/);
  assert.match(await refused('name: c\nvm:\n  memory: "512"\n'), /vm\.memory.*at least 256M/);
  assert.match(await refused('name: c\nvm:\n  memory: 1G,share=on\n'), /vm\.memory/);
});

test('the owner is an ordinary user, {owner} is checked as it will be, vm.memory at most 256G', async () => {
  for (const name of ['root', 'daemon', 'nobody', 'systemd-network']) {
    assert.match(await refused(`name: c\nowner:\n  name: ${name}\n`), new RegExp(`owner\\.name.*${name} is a system account`), name);
  }
  // Owner etc with /{owner}: /etc once replaced, located at the mount point.
  const etc = await refused('name: c\nowner:\n  name: etc\nnfs:\n  home:\n    mount: /{owner}\n');
  assert.match(etc, /c\.yaml:6:\d+ nfs\.home\.mount: with owner etc: \/etc is the guest's system folder/);
  assert.match(await refused('name: c\nowner:\n  name: workspace\nnfs:\n  home:\n    mount: /{owner}\n'), /with owner workspace: \/workspace meets the mount point of workspace/);
  assert.match(await refused('name: c\nvm:\n  memory: 1T\n'), /vm\.memory.*at most 256G/);
  const file = join(tmp, 'ok.yaml');
  await writeFile(file, 'name: ok\nowner:\n  name: alice\nnfs:\n  home:\n    mount: /home/{owner}\nvm:\n  memory: 2G\n');
  assert.is((await loadClusterOrThrow(file)).owner.name, 'alice');
});

test('job.expect runs with a time bound: a pattern that backtracks without end gives up, it does not hang', () => {
  assert.is(testBounded('done\\b', 'job done\n'), true);
  assert.is(testBounded('^ok$', 'not ok'), false);
  const t0 = Date.now();
  assert.is(testBounded('(a+)+$', `${'a'.repeat(40)}!`, 300), 'timeout');
  assert.ok(Date.now() - t0 < 5000);
});

test.after(() => rm(tmp, { recursive: true, force: true }));
test.run();
