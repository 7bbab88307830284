/**
 * rehearse's orchestration without booting a kernel: test/fixtures/fake-vm
 * puts a fake qemu-system-x86_64 first on PATH, which runs the real in-guest
 * checks script from the rehearsal seed on this host, in a mount namespace
 * that looks like an image without the NFS client, and writes its console
 * lines to the serial log. Everything else is real: the cluster file, the
 * seed (cloud-localds), the overlay (qemu-img), nfs-ganesha, ssh. What only a
 * booted image can prove (the mounts, SSH as the owner, the job) is in
 * rehearse.test.ts.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { run } from '../src/exec/run.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const tmp = await mkdtemp(join(tmpdir(), 'gf-rehearse-fake-'));
const env = { XDG_CACHE_HOME: join(tmp, 'xdg'), CI: '1', PATH: `${join(root, 'test', 'fixtures', 'fake-vm')}:${process.env.PATH}` };

interface Report {
  ok: boolean;
  checks: { id: string; status: string; detail: string }[];
}

async function leftovers(): Promise<string[]> {
  const r = await run(['pgrep', '-af', 'qemu-system|ganesha.nfsd|fake-guest-checks'], { allowFailure: true });
  return r.stdout.split('\n').filter((l) => l.includes(tmp));
}

const t = timed(suite('rehearse with a fake VM'));

t('an image without the NFS client: the NFS checks fail and say why, job-ready fails with their words, without waiting out the timeout', async () => {
  const image = join(tmp, 'no-nfs.qcow2');
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', image, '64M']);
  const cluster = join(tmp, 'cluster.yaml');
  await writeFile(cluster, 'name: no-boot-install\nbootPackages: []\ntimeouts: { jobReady: 8m }\n');
  await mkdir(join(tmp, 'xdg'), { recursive: true });
  const started = Date.now();
  const res = await execa('node', [cli, 'rehearse', image, '--cluster', cluster, '--accel', 'tcg', '--json', '--log-dir', join(tmp, 'logs')], { env, reject: false, all: false, timeout: 5 * 60_000 });
  const report = JSON.parse(res.stdout || '{}') as Report;
  assert.is(res.exitCode, 1, res.stderr);
  const byId = new Map(report.checks.map((c) => [c.id, c]));
  for (const [id, dir] of [['nfs.home', '/home/jobuser'], ['nfs.workspace', '/workspace']] as const) {
    assert.is(byId.get(id)?.status, 'fail', `${id}: ${byId.get(id)?.detail}`);
    assert.match(byId.get(id)!.detail, new RegExp(`mount of ${dir}: nfs-common not installed \\(the cluster's boot-time install is slow and needs a mirror\\)`));
  }
  assert.is(byId.get('vm.job-ready')?.status, 'fail');
  assert.match(byId.get('vm.job-ready')!.detail, /the guest finished booting, but SSH as the owner does not work/);
  assert.match(byId.get('vm.job-ready')!.detail, /nfs\.workspace: mount of \/workspace: nfs-common not installed/);
  // The guest's verdict ends the wait (15 s after it), not the cluster's 8-minute job-ready timeout.
  assert.ok(Date.now() - started < 3 * 60_000, `took ${Math.round((Date.now() - started) / 1000)} s`);
  assert.equal(await leftovers(), []);
  assert.equal((await readdir(join(tmp, 'xdg', 'guestforge', 'work')).catch(() => [] as string[])).filter((n) => n.startsWith('rehearse-')), []);
});

t.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

t.run();
