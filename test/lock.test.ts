/**
 * The lock (flock(2) through util-linux flock(1)): many processes on one
 * entry never hold it together, a holder killed with SIGKILL frees it, an
 * empty or half-written lock file is no obstacle and no crash.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { acquireLock, lockHolder, parseHolder, readLock } from '../src/exec/lock.ts';

const tmp = await mkdtemp(join(tmpdir(), 'gf-lock-'));
const worker = join(import.meta.dirname, 'helpers', 'lock-worker.ts');

function spawnWorker(args: string[]) {
  return spawn(process.execPath, ['--import', 'tsx', worker, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

test('half-written, empty and foreign holder records read as unknown, not as a crash', async () => {
  for (const text of ['', '{"pid": 12', 'null', '[]', '{"pid":"x","host":1}']) assert.is(parseHolder(text), undefined, JSON.stringify(text));
  assert.equal(parseHolder('{"pid":5,"host":"h","started":"t","profile":"p"}'), { pid: 5, host: 'h', started: 't', profile: 'p' });
  const path = join(tmp, 'half.lock');
  await writeFile(path, '{"pid": 4');
  assert.is(await readLock(path), undefined);
  assert.is(await lockHolder(path), undefined, 'a file nobody has locked is a free lock');
  const lock = await acquireLock(path, { profile: 'me' });
  assert.is((await lockHolder(path))?.profile, 'me');
  await lock.release();
  assert.is(await lockHolder(path), undefined);
  assert.ok(existsSync(path), 'the file stays for the next one');
  const again = await acquireLock(path, { profile: 'me' }, { removeOnRelease: true });
  await again.release();
  assert.not.ok(existsSync(path), 'removeOnRelease removes it');
});

test('a holder killed with SIGKILL frees the lock at once', async () => {
  const path = join(tmp, 'killed.lock');
  const child = spawnWorker([path, join(tmp, 'unused'), '0', 'hold']);
  const exited = once(child, 'exit');
  try {
    const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
    assert.is(chunk.toString().trim(), 'held');
    assert.is((await lockHolder(path))?.pid, child.pid, 'the live holder is seen, with its pid');
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  assert.is(await lockHolder(path), undefined);
  const t0 = Date.now();
  const lock = await acquireLock(path, { profile: 'next' });
  assert.ok(Date.now() - t0 < 3000, 'taken without waiting');
  await lock.release();
});

test('8 processes × 60 rounds on one lock: never two holders', async () => {
  const path = join(tmp, 'stress.lock');
  const marker = join(tmp, 'inside');
  await writeFile(path, '{"pid": 1, "host"'); // starts half-written
  const children = Array.from({ length: 8 }, () => spawnWorker([path, marker, '60']));
  const results = await Promise.all(children.map(async (c) => {
    let err = '';
    c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(c, 'exit')) as [number];
    return { code, err };
  }));
  for (const r of results) assert.is(r.code, 0, r.err);
  assert.not.ok(existsSync(marker));
});

test.after(() => rm(tmp, { recursive: true, force: true }));
test.run();
