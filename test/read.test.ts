/**
 * Reading a hostile image within bounds (issue 32): the limit decisions as
 * pure functions, and the guestfish script every read rides on, through a
 * real guestfish listener that launches no appliance (commands that need one
 * fail, which is what a failure in the middle of a script must survive).
 * The bounds on a real image are proven in verify.test.ts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { GuestSession } from '../src/guestfs/session.ts';
import { fishQuote, fishScript, maxScriptLine, splitScriptOutput } from '../src/guestfs/script.ts';
import { capGlob, planReads, probeOf, readLimits, unreadableWhy } from '../src/verify/read.ts';

const MiB = 1024 * 1024;
const limits = suite('limits (pure)');

limits('a probe: is-file true with a size is a file; false is nothing to read; an empty answer is a call that failed (a loop of links)', () => {
  assert.equal(probeOf('true\n', '42\n'), { kind: 'file', bytes: 42 });
  assert.equal(probeOf('false\n', ''), { kind: 'absent' });
  assert.equal(probeOf('', ''), { kind: 'unreadable' });
  assert.equal(probeOf('true\n', ''), { kind: 'unreadable' });
  assert.equal(probeOf('true\n', '-1\n'), { kind: 'unreadable' });
});

limits('reads within each file\'s limit and the total, in order; the others named with why', () => {
  const file = (path: string, bytes: number, limit = readLimits.fileBytes) => ({ path, probe: { kind: 'file', bytes } as const, limit });
  const plan = planReads([
    file('/etc/passwd', 900),
    { path: '/etc/missing', probe: { kind: 'absent' }, limit: MiB },
    { path: '/etc/cloud/cloud.cfg.d/loop.cfg', probe: { kind: 'unreadable' }, limit: MiB },
    file('/etc/os-release', 2 * 1024 ** 3),
    file('/var/lib/dpkg/status', 3 * MiB, readLimits.statusBytes),
    file('/etc/a.cfg', 61 * MiB, 64 * MiB),
    file('/etc/b.cfg', 10),
  ], 64 * MiB);
  assert.equal(plan.read, ['/etc/passwd', '/var/lib/dpkg/status', '/etc/b.cfg']);
  assert.equal(plan.unread.map((u) => u.path), ['/etc/cloud/cloud.cfg.d/loop.cfg', '/etc/os-release', '/etc/a.cfg']);
  assert.is(plan.unread[0]!.why, unreadableWhy);
  assert.match(plan.unread[1]!.why, /^2048 MiB, more than the 1 MiB verify reads of such a file$/);
  assert.match(plan.unread[2]!.why, /past the 64 MiB verify reads of one image in all/);
});

limits('a glob naming more files than verify reads gives none, and says how many; fewer come back sorted', () => {
  const many = Array.from({ length: 3000 }, (_, i) => `/etc/cloud/cloud.cfg.d/${i}.cfg`);
  const capped = capGlob('/etc/cloud/cloud.cfg.d/*.cfg', many);
  assert.equal(capped.paths, []);
  assert.equal(capped.unread, { path: '/etc/cloud/cloud.cfg.d/*.cfg', why: `3000 matches, more than the ${readLimits.globbedFiles} verify reads: none judged` });
  assert.equal(capGlob('p', ['/b', '/a']), { paths: ['/a', '/b'] });
  assert.is(capGlob('p', many.slice(0, readLimits.globbedFiles)).paths.length, readLimits.globbedFiles);
});

limits('the script: every command prefixed with - and followed by its marker, arguments as \\xHH but plain bytes, an over-long line left out', () => {
  assert.is(fishQuote('/etc/a b"c\n'), '"/etc/a\\x20b\\x22c\\x0a"');
  assert.is(fishQuote('ü'), '"\\xc3\\xbc"');
  const script = fishScript([['is-file', '/x', 'followsymlinks:true'], ['cat', `/${'a'.repeat(maxScriptLine)}`]], '@@m-');
  assert.is(script, `-is-file "/x" "followsymlinks:true"\necho @@m-0\necho @@m-1\n`);
  assert.throws(() => fishScript([['cat; !rm', '/x']], '@@m-'), /not a guestfish command/);
  assert.equal(splitScriptOutput('true\n@@m-0\n@@m-1\nabc@@m-2\n', '@@m-', 3), ['true\n', '', 'abc']);
  assert.equal(splitScriptOutput('true\n@@m-0\n', '@@m-', 3), ['true\n'], 'a client that stopped: fewer outputs');
  assert.equal(splitScriptOutput('@@m-0\nA@@m-10\nB@@m-1\n', '@@m-', 2), ['', 'A@@m-10\nB'], 'marker 1 is not marker 10');
});

limits('the limits are what the README and verify.complete say', () => {
  assert.equal(readLimits, { globbedFiles: 256, fileBytes: MiB, statusBytes: 64 * MiB, totalBytes: 96 * MiB, rpmDbBytes: 256 * MiB });
});

limits.run();

const real = timed(suite('the script through a real guestfish listener (no appliance launched)'));

real('a failed command, an over-long line and hostile bytes neither end the listener nor shift the outputs', async () => {
  const session = await GuestSession.listen({ accel: 'tcg' });
  try {
    // Without an appliance every file call fails, as one through a loop of links does.
    const out = await session.batch([
      ['echo', 'a b"\n\\x ü'],
      ['is-file', '/etc/passwd', 'followsymlinks:true'],
      ['echo', 'x'.repeat(maxScriptLine)],
      ['echo', 'still', 'here'],
    ]);
    assert.equal(out, ['a b"\n\\x ü\n', '', '', 'still here\n']);
    assert.is(await session.tryBool('is-file', '/etc/passwd'), undefined);
    assert.is(await session.call('echo', 'alive'), 'alive\n', 'the listener lives on');
    assert.equal(await session.batch([]), []);
  } finally {
    await session.close();
  }
  let alive = true;
  try {
    process.kill(session.pid, 0);
  } catch {
    alive = false;
  }
  assert.not.ok(alive, 'guestfish listener still running');
});

real.run();
