/**
 * Every stage undoes what it made (Packer's step cleanup), without a VM: the pipeline with a fake
 * driver fails each stage in turn and checks that every stage that ran was told, the last first,
 * and that nothing they made is left; the real stages' cleanups against the files their runs name;
 * a real OSv build through the CLI that fails at compose (no capstan for rofs) leaves no package.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { UserError } from '../src/errors.ts';
import { Logger } from '../src/log.ts';
import { loadProfileOrThrow } from '../src/loader/index.ts';
import type { BuildEnd } from '../src/model/build.ts';
import { runBuild } from '../src/pipeline/pipeline.ts';
import { removeWorkFiles } from '../src/stages/cleanup.ts';
import type { OsDriver } from '../src/stages/driver.ts';
import { baseStage, finalizeStage, injectStage, linuxPlan, provisionStage, sealStage, smokeStage, verifyStage } from '../src/stages/index.ts';
import type { BuildContext, Stage } from '../src/stages/types.ts';
import { driverFor } from '../src/os/index.ts';
import { composeStage } from '../src/os/osv/stages.ts';
import { sha256File } from '../src/util/fs.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const tmp = await mkdtemp(join(tmpdir(), 'gf-cleanup-'));
// The pipeline's work folders go under the cache: this test's own.
process.env.XDG_CACHE_HOME = join(tmp, 'cache');
const loaded = await loadProfileOrThrow(join(root, 'profiles', 'debian-13-hpc.yaml'));
const names = ['base', 'provision', 'seal', 'inject', 'verify', 'finalize', 'smoke'] as const;

/** A driver whose plan is fake stages: each makes a work file and publishes one, and fails when told. */
function fakeDriver(failAt: number | undefined, calls: [string, BuildEnd][], abort?: AbortController): { driver: OsDriver; seen: { workDir?: string } } {
  const seen: { workDir?: string } = {};
  const plan: Stage[] = names.map((name, index) => ({
    name,
    title: `fake ${name}`,
    describe: () => 'fake',
    async run(ctx: BuildContext) {
      seen.workDir = ctx.workDir;
      await writeFile(join(ctx.workDir, `made-${name}`), name);
      await writeFile(join(ctx.options.outDir, `published-${name}`), name);
      if (index === failAt) {
        if (abort) abort.abort(new UserError('interrupted (SIGINT)'));
        throw new UserError(`fake ${name} failed`);
      }
    },
    async cleanup(ctx: BuildContext, end: BuildEnd) {
      calls.push([name, end]);
      await removeWorkFiles(ctx, end, `made-${name}`);
      if (end !== 'succeeded') await rm(join(ctx.options.outDir, `published-${name}`), { force: true });
    },
  }));
  return { driver: { ...driverFor('debian'), plan: () => plan }, seen };
}

async function build(driver: OsDriver, out: string, signal = new AbortController().signal, keepWork = false) {
  await mkdir(out, { recursive: true });
  return runBuild(loaded, { outDir: out, smoke: true, keepWork, noCache: true, accel: 'tcg', driver }, new Logger({ tty: false }), signal);
}

const Pipeline = suite('pipeline cleanup with a fake driver');

Pipeline('each stage failing in turn: every stage that ran is told "failed", the last first, and nothing it made is left', async () => {
  for (let failAt = 0; failAt < names.length; failAt += 1) {
    const calls: [string, BuildEnd][] = [];
    const { driver, seen } = fakeDriver(failAt, calls);
    const out = join(tmp, `out-fail-${failAt}`);
    const outcome = await build(driver, out);
    assert.instance(outcome.error, UserError, `stage ${names[failAt]} failing fails the build`);
    assert.equal(calls, names.slice(0, failAt + 1).reverse().map((n) => [n, 'failed']), `cleanups when ${names[failAt]} fails`);
    assert.equal((await readdir(out)).filter((f) => f.startsWith('published-')), [], `nothing published is left when ${names[failAt]} fails`);
    assert.ok(seen.workDir && !existsSync(seen.workDir), 'no work folder left');
  }
});

Pipeline('a build that succeeds: every stage is told "succeeded" (its outputs stay), the work folder goes', async () => {
  const calls: [string, BuildEnd][] = [];
  const { driver, seen } = fakeDriver(undefined, calls);
  const out = join(tmp, 'out-ok');
  const outcome = await build(driver, out);
  assert.is(outcome.error, undefined);
  assert.equal(calls, [...names].reverse().map((n) => [n, 'succeeded']));
  assert.equal((await readdir(out)).filter((f) => f.startsWith('published-')).sort(), names.map((n) => `published-${n}`).sort());
  assert.ok(seen.workDir && !existsSync(seen.workDir));
});

Pipeline('--keep-work: a failed build keeps what each stage made in the work folder, and still takes back what it published', async () => {
  const calls: [string, BuildEnd][] = [];
  const { driver, seen } = fakeDriver(3, calls);
  const out = join(tmp, 'out-keep-work');
  const outcome = await build(driver, out, undefined, true);
  assert.ok(outcome.error);
  assert.equal(calls, names.slice(0, 4).reverse().map((n) => [n, 'failed']));
  assert.equal((await readdir(seen.workDir!)).filter((f) => f.startsWith('made-')).sort(), names.slice(0, 4).map((n) => `made-${n}`).sort());
  assert.equal((await readdir(out)).filter((f) => f.startsWith('published-')), []);
  await rm(seen.workDir!, { recursive: true, force: true });
});

Pipeline('an interrupted build: the stages are told "cancelled"', async () => {
  const calls: [string, BuildEnd][] = [];
  const abort = new AbortController();
  const { driver } = fakeDriver(2, calls, abort);
  const out = join(tmp, 'out-cancel');
  const outcome = await build(driver, out, abort.signal);
  assert.ok(outcome.error);
  assert.equal(calls, names.slice(0, 3).reverse().map((n) => [n, 'cancelled']));
  assert.equal((await readdir(out)).filter((f) => f.startsWith('published-')), []);
});

const Stages = suite('the real stages\' cleanups');
// The last suite to run takes the test's own folder with it.
Stages.after(() => rm(tmp, { recursive: true, force: true }));

Stages('every planned stage of every family has a cleanup', () => {
  const plans = [linuxPlan, driverFor('osv').plan(loaded.profile)];
  for (const stage of plans.flat()) assert.type(stage.cleanup, 'function', `${stage.name} has a cleanup`);
  assert.ok(plans.flat().length >= 9);
});

Stages('each removes the work files its run makes when the build failed, and keeps them for a kept build', async () => {
  const made: [Stage, string[]][] = [
    [baseStage, ['base.qcow2']],
    [provisionStage, ['provision.qcow2', 'seed.iso', 'seed', 'qmp.sock', 'console.sock']],
    [sealStage, ['seal.qcow2']],
    [injectStage, ['inject.qcow2']],
    [smokeStage, ['smoke']],
    [composeStage, [`${loaded.profile.name}.qemu`, 'osv.raw', 'upload.cpio']],
  ];
  for (const end of ['kept', 'failed'] as const) {
    for (const [stage, files] of made) {
      const workDir = join(tmp, `work-${stage.name}-${end}`);
      await mkdir(join(workDir, 'other'), { recursive: true });
      for (const f of files) await writeFile(join(workDir, f), 'x');
      await stage.cleanup({ workDir, options: { keepWork: false }, profile: loaded.profile, log: new Logger({ tty: false }) } as unknown as BuildContext, end);
      const left = (await readdir(workDir)).sort();
      assert.equal(left, end === 'kept' ? [...files, 'other'].sort() : ['other'], `${stage.name}, ${end}`);
    }
  }
  // verify makes nothing; finalize's cleanup is proven by the pipeline's failures after it (e2e, osv-real).
  await verifyStage.cleanup({} as BuildContext, 'failed');
  assert.type(finalizeStage.cleanup, 'function');
});

Stages('a real OSv build that fails at compose leaves no Capstan package, image or work folder', async () => {
  const dir = join(tmp, 'osv');
  await mkdir(dir);
  await cp(join(root, 'profiles', 'apps', 'osv-native'), join(dir, 'app'), { recursive: true });
  const base = join(dir, 'base.qcow2');
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
  await writeFile(join(dir, 'p.yaml'), [
    'name: osv-fails',
    'os: { family: osv, runtime: native, cmdline: /catmsg /msg.txt, fs: rofs }',
    `base: { image: { path: base.qcow2, sha256: ${await sha256File(base)} } }`,
    'disk: { size: 128M }',
    'apps:',
    '  - { src: app/catmsg, dest: /catmsg, mode: "0755" }',
    '  - { src: app/msg.txt, dest: /msg.txt }',
  ].join('\n'));
  const out = join(dir, 'out');
  const cache = join(dir, 'cache');
  const r = await execa('node', [cli, 'build', join(dir, 'p.yaml'), '-o', out], { reject: false, all: true, env: { XDG_CACHE_HOME: cache, CI: '1', PATH: process.env.PATH } });
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.all, /ROFS image needs capstan/);
  assert.match(r.all, /removed .*osv-fails: the build did not finish/);
  assert.not.ok(existsSync(join(out, 'osv-fails')), 'the package folder is gone');
  assert.equal((await readdir(out)).filter((f) => f !== 'logs'), [], 'nothing but the logs in -o');
  assert.equal(await readdir(join(cache, 'guestforge', 'work')).catch(() => []), [], 'no work folder');
});

Pipeline.run();
Stages.run();
