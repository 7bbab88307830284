import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../src/exec/run.ts';
import { GuestSession } from '../src/guestfs/session.ts';

const guestfs = suite('guestfish session (real libguestfs, TCG)');
guestfs('one appliance serves many calls, and closing it leaves no process', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gf-session-'));
  const disk = join(dir, 'scratch.qcow2');
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, '64M']);
  const session = await GuestSession.open([{ path: disk, format: 'qcow2' }], { accel: 'tcg' });
  try {
    await session.call('part-disk', '/dev/sda', 'mbr');
    await session.call('mkfs', 'ext4', '/dev/sda1', 'label:rootfs');
    await session.call('mount', '/dev/sda1', '/');
    await session.call('write', '/hello', 'from guestforge');
    assert.is((await session.call('cat', '/hello')).trimEnd(), 'from guestforge');
    assert.ok(await session.bool('is-file', '/hello'));
    assert.not.ok(await session.bool('exists', '/missing'));
  } finally {
    await session.close();
  }
  let alive = true;
  try { process.kill(session.pid, 0); } catch { alive = false; }
  assert.not.ok(alive, 'guestfish listener still running');
  await rm(dir, { recursive: true, force: true });
});
guestfs.run();
