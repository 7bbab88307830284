/**
 * The stage cache's store, locks and prune rules with real qemu-img disks
 * (no VM): keys, a truncated entry caught, a waiter that gets the entry
 * after the holder, a dead builder's lock file no obstacle, and which entries
 * prune removes together. Whole builds through the cache are in e2e.
 */
import { rejects } from './helpers/rejects.ts';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { choosePrune } from '../src/cache/prune.ts';
import { changedParts, stageKey, StageCache, type Entry } from '../src/cache/store.ts';
import { run } from '../src/exec/run.ts';
import { StageChain } from '../src/cache/chain.ts';
import { driverFor } from '../src/os/index.ts';
import { loadProfileOrThrow } from '../src/loader/index.ts';
import { baseStage, injectStage, provisionStage } from '../src/stages/index.ts';
import { guestforgeVersion } from '../src/util/project.ts';

const tmp = await mkdtemp(join(tmpdir(), 'gf-cache-'));
let n = 0;

/** A small qcow2 with some data written, optionally on a backing file. */
async function disk(backing?: string): Promise<string> {
  n += 1;
  const path = join(tmp, `d${n}.qcow2`);
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', ...(backing ? ['-b', backing, '-F', 'qcow2'] : []), path, '64M']);
  await run(['qemu-io', '-c', `write -P ${n} 0 8M`, path]);
  return path;
}

const keys = suite('stage keys');

keys('a key changes with any input, the parent key, the parent id and the version', () => {
  const parts = { packages: 'a', seed: 'b' };
  const parent = { key: 'k', id: 'i' };
  const k = stageKey('provision', parts, parent, '1.0.0');
  assert.is(k.length, 16);
  assert.is(stageKey('provision', { seed: 'b', packages: 'a' }, parent, '1.0.0'), k, 'order of parts does not matter');
  assert.is.not(stageKey('provision', { ...parts, packages: 'x' }, parent, '1.0.0'), k);
  assert.is.not(stageKey('provision', parts, { key: 'k', id: 'other' }, '1.0.0'), k, 'a remade parent changes the key');
  assert.is.not(stageKey('provision', parts, parent, '1.0.1'), k);
  assert.is.not(stageKey('inject', parts, parent, '1.0.0'), k);
  assert.equal(changedParts({ a: '1', b: '2' }, { a: '1', b: '3', c: '4' }), ['b', 'c']);
});

const store = suite('store and lookup');

store('plan on a cache with a corrupted entry reports it and leaves it byte for byte in place', async () => {
  const root = join(tmp, 'plan-ro');
  const dir = join(root, 'profile');
  await mkdir(dir, { recursive: true });
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', join(dir, 'base.qcow2'), '64M']);
  const sha = (await run(['sha256sum', join(dir, 'base.qcow2')])).stdout.split(' ')[0]!;
  const file = join(dir, 'p.yaml');
  await writeFile(file, ['name: plan-ro', 'os: { family: debian, release: "12" }', `base: { image: { path: base.qcow2, sha256: "${sha}" } }`, 'disk: { size: 1G }'].join('\n'));
  // The provision entry this profile's build would use, made as the build makes it, then corrupted.
  const { profile } = await loadProfileOrThrow(file);
  const driver = driverFor(profile.os.family);
  const chain = new StageChain({ cache: new StageCache(join(root, 'guestforge')), version: await guestforgeVersion(), readOnly: true, stageNames: driver.plan(profile).map((s) => s.name) });
  chain.advanceUncached(baseStage, { profile, driver });
  const miss = await chain.decide(provisionStage, { profile, driver });
  assert.is(miss.kind, 'miss');
  const cache = new StageCache(join(root, 'guestforge'));
  const entry = await cache.store(await disk(), { stage: 'provision', key: miss.kind === 'miss' ? miss.key : '', profile: 'plan-ro', guestforge: '0', parts: {} });
  await run(['qemu-io', '-c', 'write -P 7 0 64k', entry.path]);
  await truncate(entry.path, entry.bytes - 4096);
  const before = await readFile(entry.path);
  const record = await readFile(entry.path.replace(/\.qcow2$/, '.json'));
  const r = spawnSync(process.execPath, [join(import.meta.dirname, '..', 'bin', 'guestforge.js'), 'plan', '--json', file], { encoding: 'utf8', env: { ...process.env, XDG_CACHE_HOME: root } });
  assert.is(r.status, 0, r.stderr);
  const line = (JSON.parse(r.stdout) as { cache: { stage: string; cache: string; why: string }[] }).cache.find((l) => l.stage === 'provision');
  assert.is(line?.cache, 'miss');
  assert.match(line!.why, /broken .*the build will remove and remake it/);
  assert.ok((await readFile(entry.path)).equals(before), 'the disk is unchanged');
  assert.ok((await readFile(entry.path.replace(/\.qcow2$/, '.json'))).equals(record), 'the record is unchanged');
  assert.not.ok(existsSync(entry.path.replace(/\.qcow2$/, '.lock')), 'plan took no lock');

  // The build's own walk looks without the lock, so it must not remove either: that waits for the lock.
  const buildChain = new StageChain({ cache, version: await guestforgeVersion(), readOnly: false, stageNames: driver.plan(profile).map((s) => s.name) });
  buildChain.advanceUncached(baseStage, { profile, driver });
  const seen = await buildChain.decide(provisionStage, { profile, driver });
  assert.is(seen.kind, 'miss');
  assert.ok((await readFile(entry.path)).equals(before), 'the build\'s unlocked look removed nothing');
  assert.ok(existsSync(entry.path.replace(/\.qcow2$/, '.json')));
});

store('after a stage that will run, a stage with nothing to cache is uncached, as the build says', async () => {
  const { profile } = await loadProfileOrThrow(join(import.meta.dirname, '..', 'profiles', 'debian-12-hpc.yaml'));
  const driver = driverFor(profile.os.family);
  const chain = new StageChain({ cache: new StageCache(join(tmp, 'c-willrun')), version: '0', readOnly: true, stageNames: driver.plan(profile).map((s) => s.name) });
  chain.markWillRun();
  const nothing = { ...injectStage, cache: { ...injectStage.cache!, inputs: async () => undefined } };
  assert.is((await chain.decide(nothing, { profile, driver })).kind, 'uncached');
  assert.is((await chain.decide(injectStage, { profile, driver })).kind, 'miss');
});

store('a stored entry is a hit; a truncated one is a miss and is removed', async () => {
  const cache = new StageCache(join(tmp, 'c1'));
  const made = await disk();
  const entry = await cache.store(made, { stage: 'base', key: '0123456789abcdef', profile: 'p', guestforge: '0', parts: { x: '1' } });
  assert.is(entry.path, cache.pathOf('base', '0123456789abcdef'));
  assert.not.ok(await stat(made).then(() => true, () => false), 'the disk was moved, not copied');
  const hit = await cache.lookup('base', '0123456789abcdef');
  assert.ok(hit.hit);
  await truncate(entry.path, Math.floor(entry.bytes / 2));
  const miss = await cache.lookup('base', '0123456789abcdef');
  assert.not.ok(miss.hit);
  assert.match(!miss.hit ? miss.reason : '', /broken .*record says/);
  assert.not.ok(await stat(entry.path).then(() => true, () => false), 'the broken entry is removed');
  assert.equal(await cache.list(), []);
});

store('qemu-img check catches corruption the size does not show; nothing unsound is stored', async () => {
  const cache = new StageCache(join(tmp, 'c2'));
  const made = await disk();
  const entry = await cache.store(made, { stage: 'base', key: '1111111111111111', profile: 'p', guestforge: '0', parts: {} });
  // Overwrite the first L1/refcount area with garbage, keeping the size.
  const r = await run(['dd', 'if=/dev/urandom', `of=${entry.path}`, 'bs=64k', 'seek=1', 'count=3', 'conv=notrunc'], { allowFailure: true });
  assert.is(r.exitCode, 0, r.stderr);
  const miss = await cache.lookup('base', '1111111111111111');
  assert.not.ok(miss.hit);
  assert.match(!miss.hit ? miss.reason : '', /qemu-img check/);

  const bad = join(tmp, 'bad.qcow2');
  await writeFile(bad, 'not a qcow2');
  await rejects(cache.store(bad, { stage: 'base', key: '2222222222222222', profile: 'p', guestforge: '0', parts: {} }), /failed qemu-img check/, 'a disk failing qemu-img check was stored');
  assert.not.ok((await cache.lookup('base', '2222222222222222')).hit);
});

store('an entry whose backing file is gone is a miss', async () => {
  const cache = new StageCache(join(tmp, 'c3'));
  const parent = await disk();
  const child = await disk(parent);
  await cache.store(child, { stage: 'provision', key: '3333333333333333', parent: { key: 'p', id: 'i', path: parent }, profile: 'p', guestforge: '0', parts: {} });
  await rm(parent);
  const miss = await cache.lookup('provision', '3333333333333333');
  assert.match(!miss.hit ? miss.reason : '', /backing file .* is gone/);
});

const locks = suite('locks');

locks('a second builder waits for the first, then takes the lock', async () => {
  const cache = new StageCache(join(tmp, 'c4'));
  const first = await cache.lock('provision', 'aaaaaaaaaaaaaaaa', { profile: 'one' });
  let waitedFor: number | undefined;
  let secondGot = false;
  const second = cache.lock('provision', 'aaaaaaaaaaaaaaaa', { profile: 'two' }, { onWait: (by) => (waitedFor = by.pid) }).then((l) => {
    secondGot = true;
    return l;
  });
  await new Promise((r) => setTimeout(r, 1500));
  assert.not.ok(secondGot, 'the second builder must wait');
  assert.is(waitedFor, process.pid);
  assert.is((await cache.lockHolder('provision', 'aaaaaaaaaaaaaaaa'))?.profile, 'one');
  await first.release();
  const lock = await second;
  assert.ok(secondGot);
  assert.is((await cache.lockHolder('provision', 'aaaaaaaaaaaaaaaa'))?.profile, 'two');
  await lock.release();
});

locks('a lock file left behind by a builder that died is no obstacle', async () => {
  const cache = new StageCache(join(tmp, 'c5'));
  const dead = spawnSync('true').pid!;
  await cache.lock('inject', 'bbbbbbbbbbbbbbbb', { profile: 'x' }).then((l) => l.release());
  await writeFile(join(cache.dir, 'inject-bbbbbbbbbbbbbbbb.lock'), JSON.stringify({ pid: dead, host: hostname(), started: new Date().toISOString(), profile: 'crashed' }));
  assert.is(await cache.lockHolder('inject', 'bbbbbbbbbbbbbbbb'), undefined, 'a dead holder does not count');
  const lock = await Promise.race([
    cache.lock('inject', 'bbbbbbbbbbbbbbbb', { profile: 'y' }),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('waited on a stale lock')), 5000)),
  ]);
  assert.is((await cache.lockHolder('inject', 'bbbbbbbbbbbbbbbb'))?.profile, 'y');
  await lock.release();
});

const prune = suite('prune rules');

function entry(stage: Entry['stage'], key: string, lastUsed: string, bytes: number, parent?: Entry): Entry {
  return {
    stage, key, id: `${key}-id`, profile: 'p', guestforge: '0', parts: {}, bytes, created: lastUsed, lastUsed,
    path: `/c/stages/${stage}-${key}.qcow2`,
    ...(parent ? { parent: { key: parent.key, id: parent.id, path: parent.path } } : {}),
  };
}

prune('old entries go with everything backed by them; a busy chain stays; orphans always go', () => {
  const now = Date.parse('2026-11-20T00:00:00Z');
  const base = entry('base', 'b', '2026-11-01T00:00:00Z', 1000);
  const prov = entry('provision', 'p', '2026-11-01T00:00:00Z', 500, base);
  const inj = entry('inject', 'i', '2026-11-19T00:00:00Z', 100, prov);
  const orphan = { ...entry('inject', 'o', '2026-11-19T00:00:00Z', 100, prov), parent: { key: 'p', id: 'remade', path: prov.path } };
  const all = [base, prov, inj, orphan];

  const week = choosePrune(all, { olderThanMs: 7 * 86_400_000, now });
  assert.equal(week.map((c) => c.entry.key).sort(), ['b', 'i', 'o', 'p'], 'inj is recent but backed by an old entry');
  assert.match(week.find((c) => c.entry.key === 'i')!.reason, /backed by provision-p/);
  assert.match(week.find((c) => c.entry.key === 'o')!.reason, /parent entry is gone or was remade/);

  const busy = choosePrune(all, { olderThanMs: 7 * 86_400_000, now }, new Set([inj.path]));
  assert.equal(busy.map((c) => c.entry.key), ['o'], 'a running build uses inj, so inj, prov and base stay');

  const budget = choosePrune([base, prov, inj], { keepBytes: 1200, now });
  assert.equal(budget.map((c) => c.entry.key).sort(), ['b', 'i', 'p'], 'the least recently used is the base: all go with it');
  const roomy = choosePrune([base, prov, inj], { keepBytes: 5000, now });
  assert.equal(roomy, []);
  assert.equal(choosePrune([base, prov, inj], { now }).length, 3, 'no limits: everything');
});

prune('guestforge cache prune: removes entries with their children, keeps the chain a live build uses, clears dead work folders', async () => {
  const root = join(tmp, 'xdg');
  const cache = new StageCache(join(root, 'guestforge'));
  const base = await cache.store(await disk(), { stage: 'base', key: 'aaaa000000000001', profile: 'p', guestforge: '0', parts: {} });
  const prov = await cache.store(await disk(base.path), { stage: 'provision', key: 'aaaa000000000002', parent: { key: base.key, id: base.id, path: base.path }, profile: 'p', guestforge: '0', parts: {} });
  const other = await cache.store(await disk(), { stage: 'base', key: 'bbbb000000000001', profile: 'q', guestforge: '0', parts: {} });
  const otherChild = await cache.store(await disk(other.path), { stage: 'provision', key: 'bbbb000000000002', parent: { key: other.key, id: other.id, path: other.path }, profile: 'q', guestforge: '0', parts: {} });
  // A live build (this process) with an overlay on prov; a dead one with nothing of use.
  const live = join(root, 'guestforge', 'work', 'p-live');
  const dead = join(root, 'guestforge', 'work', 'q-dead');
  for (const [dir, pid] of [[live, process.pid], [dead, spawnSync('true').pid!]] as const) {
    await run(['mkdir', '-p', dir]);
    await writeFile(join(dir, 'owner.json'), JSON.stringify({ pid, host: hostname(), started: new Date().toISOString(), profile: 'x' }));
  }
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', prov.path, '-F', 'qcow2', join(live, 'inject.qcow2')]);
  const cli = (args: string[]) => run([process.execPath, join(import.meta.dirname, '..', 'bin', 'guestforge.js'), ...args], { env: { XDG_CACHE_HOME: root }, allowFailure: true });

  const ls = await cli(['cache', 'ls']);
  assert.is(ls.exitCode, 0, ls.stderr);
  assert.match(ls.stdout, /^provision\s+aaaa000000000002\s+.*\s+p\s+base-aaaa000000000001$/m);
  assert.match(ls.stdout, /4 entries/);
  const r = await cli(['cache', 'prune']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /removed base-bbbb000000000001 /);
  assert.match(r.stdout, /removed provision-bbbb000000000002 /);
  assert.match(r.stdout, /q-dead: work folder of a build that is no longer running/);
  assert.match(r.stdout, /removed 2 entries .* 2 kept/);
  const left = (await cache.list()).map((e) => e.key).sort();
  assert.equal(left, ['aaaa000000000001', 'aaaa000000000002'], 'the chain under the live build stays');
  assert.not.ok(await stat(otherChild.path).then(() => true, () => false));
  assert.not.ok(await stat(dead).then(() => true, () => false));
  assert.ok(await stat(live).then(() => true, () => false));
  const bad = await cli(['cache', 'prune', '--keep-bytes', 'lots']);
  assert.is(bad.exitCode, 2);
  assert.match(bad.stderr, /sizes like 20G/);
});

prune.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

keys.run();
store.run();
locks.run();
prune.run();
