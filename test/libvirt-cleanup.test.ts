/**
 * The libvirt runner undoes what it made on every error path, proven with a
 * fake virsh on PATH (test/fixtures/fake-virsh) that keeps domains and volumes
 * as files and hangs in the verb it is told to, after doing its work, the way
 * libvirtd finishes a request whose client was killed. Budgets of a second or
 * two (GUESTFORGE_VIRSH_BUDGET) make each case take seconds.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { killAll, run } from '../src/exec/run.ts';
import { Logger } from '../src/log.ts';
import { leftovers, libvirtStarter, type LibvirtTarget } from '../src/vm/libvirt.ts';
import { bootVm } from '../src/vm/watch.ts';
import type { VmSpec } from '../src/vm/qemu-args.ts';
import { budgetFromEnv, VirshTimeout } from '../src/vm/virsh.ts';
import { timed } from './helpers/timing.ts';
import { leftWork } from './helpers/work.ts';
import { existsSync } from 'node:fs';

const fakeBin = resolve(import.meta.dirname, 'fixtures', 'fake-virsh');
const cli = resolve(import.meta.dirname, '..', 'bin', 'guestforge.js');
const remote: LibvirtTarget = { uri: 'qemu+tcp://127.0.0.1/system', pool: 'guestforge-test' };
const local: LibvirtTarget = { pool: 'guestforge' };

interface Fake {
  dir: string;
  spec: VmSpec;
  calls(): Promise<string[]>;
}

/** A fake daemon's state, a real 16 MiB qcow2 and a seed file, the fake first on PATH, and the environment the case asks for. */
async function withFake(env: Record<string, string>, body: (fake: Fake) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'gf-fake-virsh-'));
  const saved = { ...process.env };
  Object.assign(process.env, { PATH: `${fakeBin}:${process.env.PATH}`, FAKE_VIRSH_DIR: join(dir, 'state'), GUESTFORGE_VIRSH_BUDGET: '0.5:2:1', ...env });
  try {
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', join(dir, 'disk.qcow2'), '16M']);
    await run(['truncate', '-s', '64K', join(dir, 'seed.iso')]);
    const spec: VmSpec = {
      disk: join(dir, 'disk.qcow2'), diskFormat: 'qcow2', seedIso: join(dir, 'seed.iso'), memoryMiB: 512, cpus: 1, accel: 'tcg',
      serialLog: join(dir, 'console.log'), qmpSocket: join(dir, 'qmp.sock'), unsafeCache: true,
    };
    await body({ dir, spec, calls: async () => (await readFile(join(dir, 'state', 'calls'), 'utf8').catch(() => '')).split('\n').filter(Boolean) });
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
    await rm(dir, { recursive: true, force: true });
  }
}

/** What `virsh list --all` and `virsh vol-list` (the fake's) still show of guestforge's. */
async function assertNothingLeft(target: LibvirtTarget): Promise<void> {
  const left = await leftovers(target);
  assert.equal(left.domains, [], 'no guestforge domain may stay defined');
  assert.equal(left.volumes, [], 'no guestforge volume may stay in the pool');
}

/** The error `work` rejects with, or a failure if it resolves or takes longer than a generous bound (today's 120 s timeouts would). */
async function rejection(work: Promise<unknown>, boundMs = 30_000): Promise<Error> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${boundMs / 1000}s`)), boundMs);
  });
  try {
    await Promise.race([work, bound]);
  } catch (error) {
    assert.not.match((error as Error).message, /^still running after/, 'the runner hung');
    return error as Error;
  } finally {
    clearTimeout(timer);
  }
  assert.unreachable('it should have failed');
  throw new Error('unreachable');
}

const starter = (target: LibvirtTarget) => libvirtStarter(target, { namePrefix: 'cleanup-provision', diskIsResult: true, log: new Logger() });

const hangs = timed(suite('libvirt runner clean-up (fake virsh)'));

hangs('virsh start that hangs on a remote URI: a budget error naming start, then no domain and no volume', async () => {
  await withFake({ FAKE_VIRSH_HANG: 'start' }, async (fake) => {
    const error = await rejection(starter(remote)(fake.spec, 'build VM'));
    assert.instance(error, VirshTimeout);
    assert.is((error as VirshTimeout).verdict, 'slow', 'the fake daemon answers hostname: a slow host, cut at the ceiling');
    assert.equal((error as VirshTimeout).args[0], 'start');
    const calls = await fake.calls();
    assert.ok(calls.some((c) => c.startsWith('vol-create-as ')), 'volumes were made');
    assert.ok(calls.some((c) => c.startsWith('undefine ')), 'the domain was undefined');
    await assertNothingLeft(remote);
  });
});

hangs('virsh define that hangs after the daemon defined it (local URI): undefined all the same', async () => {
  await withFake({ FAKE_VIRSH_HANG: 'define' }, async (fake) => {
    const error = await rejection(starter(local)(fake.spec, 'build VM'));
    assert.instance(error, VirshTimeout);
    assert.equal((error as VirshTimeout).args[0], 'define');
    await assertNothingLeft(local);
  });
});

hangs('a daemon that stops answering: the call is ended at call + ping time as "stuck", not at the ceiling', async () => {
  await withFake({ FAKE_VIRSH_HANG: 'start', FAKE_VIRSH_STUCK: '1', GUESTFORGE_VIRSH_BUDGET: '0.5:60:1' }, async (fake) => {
    const t0 = Date.now();
    const error = await rejection(starter(remote)(fake.spec, 'build VM'));
    assert.instance(error, VirshTimeout);
    assert.is((error as VirshTimeout).verdict, 'stuck');
    assert.ok(Date.now() - t0 < 30_000, 'ended long before the 60 s ceiling');
    assert.match(error.message, /did not answer virsh hostname either/);
    await assertNothingLeft(remote);
  });
});

hangs('virsh domstate that hangs while the VM runs: the boot fails, the domain and volumes go', async () => {
  await withFake({ FAKE_VIRSH_HANG: 'domstate' }, async (fake) => {
    const error = await rejection(bootVm(fake.spec, { label: 'build VM', nonce: 'abc123', timeoutMs: 60_000, stallMs: 60_000, log: new Logger() }, starter(remote)));
    assert.instance(error, VirshTimeout);
    assert.equal((error as VirshTimeout).args[0], 'domstate');
    await assertNothingLeft(remote);
  });
});

hangs('SIGTERM while virsh start runs (every child killed, as withSignals does): no domain, no volume', async () => {
  await withFake({ FAKE_VIRSH_HANG: 'start', GUESTFORGE_VIRSH_BUDGET: '60:600' }, async (fake) => {
    const starting = starter(remote)(fake.spec, 'build VM');
    for (let i = 0; i < 100 && !(await fake.calls()).some((c) => c.startsWith('start ')); i += 1) await new Promise((r) => setTimeout(r, 100));
    await killAll('SIGTERM');
    const error = await rejection(starting);
    assert.match(error.message, /virsh start guestforge-cleanup-provision-[0-9a-f]{6} failed/);
    await assertNothingLeft(remote);
  });
});

hangs('a domain the daemon will not undefine is said with the commands to remove it, not left silently', async () => {
  await withFake({ FAKE_VIRSH_HANG: 'start', FAKE_VIRSH_KEEP: '1' }, async (fake) => {
    const warnings: string[] = [];
    const log = new Logger();
    log.warn = (message: string) => void warnings.push(message);
    const error = await rejection(libvirtStarter(local, { namePrefix: 'cleanup-provision', diskIsResult: true, log })(fake.spec, 'build VM'));
    assert.instance(error, VirshTimeout, 'the first error is the one thrown');
    const said = warnings.find((w) => /kept what guestforge made/.test(w));
    assert.ok(said, warnings.join('\n'));
    assert.match(said!, /the domain guestforge-cleanup-provision-[0-9a-f]{6} is still defined/);
    assert.match(said!, /virsh -c qemu:\/\/\/system undefine --nvram guestforge-cleanup-provision-/);
    assert.is((await leftovers(local)).domains.length, 1, 'the fake really kept it');
  });
});

hangs('a whole build whose virsh start hangs (remote URI): exit 1 naming start, then virsh list --all and vol-list show nothing of guestforge\'s', async () => {
  await withFake({ FAKE_VIRSH_HANG: 'start' }, async (fake) => {
    // A base image checked by sha256 (no bootstrap), so the build reaches its build VM in seconds.
    const base = join(fake.dir, 'base.qcow2');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '64M']);
    const sha = (await run(['sha256sum', base])).stdout.split(' ')[0];
    const profile = join(fake.dir, 'fake-start.yaml');
    await writeFile(profile, ['name: fake-start', 'os: { family: debian, release: "12" }', `base: { image: { path: base.qcow2, sha256: "${sha}" } }`, 'disk: { size: 1G }'].join('\n'));
    const r = await execa('node', [cli, 'build', profile, '-o', join(fake.dir, 'out'), '--connect', remote.uri!, '--pool', remote.pool, '--accel', 'tcg', '--no-smoke'],
      { env: { ...process.env, XDG_CACHE_HOME: join(fake.dir, 'cache'), CI: '1' }, reject: false, all: true, timeout: 120_000 });
    assert.is(r.exitCode, 1, r.all);
    assert.match(r.all, /virsh start did not finish in \d+s, though libvirtd at qemu\+tcp:\/\/127\.0\.0\.1\/system still answers/);
    assert.ok((await fake.calls()).some((c) => c.startsWith('vol-upload ')), 'the disks were uploaded before the start');
    const list = await run(['virsh', '-c', remote.uri!, '-q', 'list', '--all', '--name']);
    const vols = await run(['virsh', '-c', remote.uri!, '-q', 'vol-list', '--pool', remote.pool]);
    assert.is(list.stdout.trim(), '', 'virsh list --all');
    assert.is(vols.stdout.trim(), '', 'virsh vol-list');
    assert.equal(await leftWork(join(fake.dir, 'cache'), ['fake-start-']), [], 'no work folder left');
    assert.not.ok(existsSync(join(fake.dir, 'out', 'fake-start.qcow2')));
  });
});

const budget = suite('virsh budget from the environment');
budget('CALL:CEILING[:PING] seconds; anything else is a usage error', () => {
  assert.equal(budgetFromEnv(''), { callMs: 60_000, pingMs: 30_000, ceilingMs: 600_000 });
  assert.equal(budgetFromEnv('90:900'), { callMs: 90_000, pingMs: 30_000, ceilingMs: 900_000 });
  assert.equal(budgetFromEnv('1:2:0.5'), { callMs: 1000, pingMs: 500, ceilingMs: 2000 });
  for (const bad of ['60', '600:60', 'a:b', '1:2:3:4', '0:10']) {
    assert.throws(() => budgetFromEnv(bad), (e: Error) => /GUESTFORGE_VIRSH_BUDGET/.test(e.message), bad);
  }
});

hangs.run();
budget.run();
