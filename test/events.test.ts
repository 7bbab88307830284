/**
 * `build --json-events`: the channel the matrix reads its children through.
 * Pure tests for the parser and the status line; one real CLI run of a build
 * that fails at its checksum (no VM), whose stdout must be events only.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { statusOf } from '../src/pipeline/matrix.ts';
import { parseEvent, type BuildEvent } from '../src/log.ts';
import { writeWrongShaProfile } from './helpers/wrong-sha.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const tmp = await mkdtemp(join(tmpdir(), 'gf-events-'));

const pure = suite('events: parse and status');

pure('a step event becomes one status line; other events and stray text do not', () => {
  assert.is(statusOf({ type: 'step', state: 'running', title: '[2/5] build VM (cloud-init)' }), '[2/5] build VM (cloud-init) running');
  assert.is(statusOf({ type: 'step', state: 'done', title: '[2/5] build VM (cloud-init)', seconds: 108.6, detail: 'result after 107s' }), '[2/5] build VM (cloud-init) done: result after 107s');
  assert.is(statusOf({ type: 'step', state: 'failed', title: '[3/5] apps and clean-up (guestfish)', seconds: 3 }), '[3/5] apps and clean-up (guestfish) failed');
  assert.is(statusOf({ type: 'output', path: '/o/x.qcow2', bytes: 1, sha256: 'ab' }), undefined);
});

pure('parseEvent takes only known event objects', () => {
  assert.equal(parseEvent('{"type":"result","ok":true,"exitCode":0}'), { type: 'result', ok: true, exitCode: 0 });
  // What a build prints in text mode is no event, even when it looks like one.
  assert.is(parseEvent('✔ [2/5] build VM (cloud-init) (108.6s)'), undefined);
  assert.is(parseEvent('{"type":"step"'), undefined);
  assert.is(parseEvent('{"type":"nonsense"}'), undefined);
  assert.is(parseEvent('[1,2]'), undefined);
  assert.is(parseEvent(''), undefined);
});

const cliSuite = suite('events: a real build run');

cliSuite('a build failing at its checksum: stdout is JSON lines only, ending in a failed result with the error', async () => {
  const profile = await writeWrongShaProfile(join(tmp, 'sha'));
  const r = await execa('node', [cli, 'build', profile, '-o', join(tmp, 'out'), '--json-events'], {
    env: { XDG_CACHE_HOME: join(tmp, 'cache'), CI: '1' }, reject: false, timeout: 120_000,
  });
  assert.is(r.exitCode, 1, r.stderr);
  const lines = r.stdout.split('\n').filter(Boolean);
  const events = lines.map((l) => parseEvent(l));
  assert.ok(events.every(Boolean), `not an event: ${lines.find((l) => !parseEvent(l))}`);
  const list = events as BuildEvent[];
  assert.equal(list[0], { type: 'step', state: 'running', title: '[1/7] base disk' });
  assert.ok(list.some((e) => e.type === 'step' && e.state === 'failed' && e.title === '[1/7] base disk'), r.stdout);
  const last = list.at(-1)!;
  assert.is(last.type, 'result');
  if (last.type !== 'result') return;
  assert.is(last.ok, false);
  assert.is(last.exitCode, 1);
  assert.match(last.error ?? '', /sha256 mismatch/);
  // The human error still goes to stderr, as without the flag.
  assert.match(r.stderr, /^error: sha256 mismatch/m);
});

cliSuite('usage errors end the stream with a failed result too; several profiles are refused', async () => {
  const r = await execa('node', [cli, 'build', '--json-events', '--accel', 'fast', 'x.yaml'], { reject: false, timeout: 60_000 });
  assert.is(r.exitCode, 2);
  assert.equal(r.stdout.split('\n').filter(Boolean).map((l) => parseEvent(l)?.type), ['result']);
  assert.match(parseEvent(r.stdout.trim())?.type === 'result' ? (parseEvent(r.stdout.trim()) as { error: string }).error : '', /--accel must be auto, kvm or tcg/);
  const several = await execa('node', [cli, 'build', '--json-events', 'a.yaml', 'b.yaml'], { reject: false, timeout: 60_000 });
  assert.is(several.exitCode, 2);
  assert.match(several.stdout, /"error":"build: --json-events is for one profile/);
});

cliSuite.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

pure.run();
cliSuite.run();
