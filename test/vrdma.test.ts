/**
 * vRDMA for real under TCG: profiles/debian-12-vrdma.yaml built and
 * smoke-booted, with the soft-RoCE link, the verbs device and an ib_send_bw
 * loopback checked inside the VM; and a cloud-kernel profile that forbids
 * another kernel failing at verify. Bases come from .test-cache/ (the
 * default profile's base is shared with e2e.test.ts).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const env = { XDG_CACHE_HOME: process.env.GUESTFORGE_TEST_CACHE ?? join(root, '.test-cache'), CI: '1' };
const tmp = await mkdtemp(join(tmpdir(), 'gf-vrdma-'));

const build = (profile: string, out: string, ...args: string[]) =>
  execa('node', [cli, 'build', profile, '-o', out, ...args], { env, reject: false, all: true, timeout: 40 * 60_000 });

const v = suite('vRDMA (soft-RoCE) end to end');

v('debian-12-vrdma builds, verify passes the vrdma rules, and RDMA works inside the smoke VM', async () => {
  const out = join(tmp, 'out');
  const junit = join(tmp, 'vrdma.xml');
  const r = await build(join(root, 'profiles', 'debian-12-vrdma.yaml'), out, '--junit', junit);
  assert.is(r.exitCode, 0, r.all);
  const manifest = JSON.parse(await readFile(join(out, 'debian-12-vrdma.manifest.json'), 'utf8'));
  for (const id of ['vrdma.packages', 'vrdma.kernel', 'vrdma.boot']) {
    const rule = manifest.verify.find((x: { id: string }) => x.id === id);
    assert.is(rule?.verdict, 'pass', `${id}: ${rule?.evidence}`);
  }
  const checks = new Map<string, { status: string; detail: string }>(manifest.smoke.checks.map((c: { id: string }) => [c.id, c]));
  for (const id of ['vrdma.link', 'vrdma.ibv-devices', 'vrdma.loopback']) {
    assert.is(checks.get(id)?.status, 'pass', `${id}: ${checks.get(id)?.detail}`);
  }
  assert.match(checks.get('vrdma.link')!.detail, /state ACTIVE/);
  assert.match(checks.get('vrdma.loopback')!.detail, /ib_send_bw over \S+: .* = \d+ \d+ /);
  const xml = await readFile(junit, 'utf8');
  for (const id of ['vrdma.link', 'vrdma.ibv-devices', 'vrdma.loopback', 'vrdma.kernel']) assert.match(xml, new RegExp(`name="${id.replace('.', '\\.')}"`));
  assert.match(xml, /failures="0"/);
});

v('a cloud-kernel base with installKernel: false fails at verify, naming the kernel', async () => {
  const out = join(tmp, 'cloud-out');
  const r = await build(join(root, 'test', 'fixtures', 'profiles', 'vrdma-cloud-kernel.yaml'), out, '--no-smoke');
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.all, /does not meet the guest requirements/);
  assert.match(r.all, /vrdma\.kernel: kernel without rdma_rxe: \S+-cloud-amd64/);
  assert.match(r.all, /vrdma.installKernel is false/, 'the build log says why no kernel was installed');
  assert.not.ok(existsSync(join(out, 'vrdma-cloud-kernel.qcow2')));
});

v.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

v.run();
