import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../src/exec/run.ts';
import { rejects } from './helpers/rejects.ts';
import { expectedDeviceNames, GuestSession } from '../src/guestfs/session.ts';

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
    // A failed command's reason is printed by the server, not by `guestfish --remote`: the error carries it.
    const failed = await rejects(session.call('cat', '/missing'), /guestfish exited with code 1/);
    assert.match(failed.hint ?? '', /libguestfs: error: [a-z_-]+: \/missing: No such file or directory/);
  } finally {
    await session.close();
  }
  let alive = true;
  try { process.kill(session.pid, 0); } catch { alive = false; }
  assert.not.ok(alive, 'guestfish listener still running');
  // Named by the process that opened it (other files' sessions may run beside this one).
  const left = (await readdir(tmpdir())).filter((f) => f.startsWith(`guestforge-guestfish-${process.pid}-`));
  assert.equal(left, [], 'the session\'s private folder is removed at close');
  await rm(dir, { recursive: true, force: true });
});
guestfs.run();

/**
 * A fake guestfish first on PATH for `body`: `--listen` gives PID 999999, every remote call runs
 * `remote` (sh, its words in "$*"), and each call's words go to the calls file, read back as lines.
 */
async function withFakeGuestfish(remote: string, body: (calls: () => Promise<string[]>) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'gf-session-fake-'));
  const log = join(dir, 'calls');
  await writeFile(join(dir, 'guestfish'), `#!/bin/sh\necho "$*" >> ${log}\ncase "$1" in --listen) echo "GUESTFISH_PID=999999; export GUESTFISH_PID" ;; *) ${remote} ;; esac\n`);
  await chmod(join(dir, 'guestfish'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${dir}:${path}`;
  try {
    await body(async () => (await readFile(log, 'utf8')).split('\n'));
  } finally {
    process.env.PATH = path;
    await rm(dir, { recursive: true, force: true });
  }
}

const retry = suite('guestfish session: a listener gone before its first command');
retry('is tried once more, then reported (a fake guestfish on PATH whose server never answers)', async () => {
  // --remote: what guestfish says when the server is gone.
  await withFakeGuestfish('echo "guestfish: remote: looks like the server is not running" >&2; exit 1', async (calls) => {
    const retries: string[] = [];
    const error = await GuestSession.open([{ path: '/x.qcow2', format: 'qcow2' }], { accel: 'tcg', onRetry: (r) => retries.push(r) }).catch((e: unknown) => e);
    assert.instance(error, Error);
    assert.match((error as Error).message, /the guestfish server 999999 ended before its first command/);
    assert.equal(retries, ['the guestfish server 999999 ended before its first command']);
    assert.is((await calls()).filter((l) => l.startsWith('--listen')).length, 2, 'launched twice');
  });
});
retry.run();

const names = suite('guestfish session: disks named out of their order');
names('a launch whose disks are not /dev/sda… in the order added is made once more, then reported (a fake guestfish)', async () => {
  assert.equal(expectedDeviceNames(3), ['/dev/sda', '/dev/sdb', '/dev/sdc']);
  assert.is(expectedDeviceNames(27), undefined);
  // Every remote command succeeds; list-devices answers what CI once saw: a disk letter past the disks added.
  await withFakeGuestfish(`case "$*" in *list-devices*) printf '/dev/sda\\n/dev/sdd\\n' ;; esac`, async (calls) => {
    const retries: string[] = [];
    const disks = [{ path: '/a.qcow2', format: 'qcow2' as const }, { path: '/b.qcow2', format: 'qcow2' as const }];
    const error = await GuestSession.open(disks, { accel: 'tcg', onRetry: (r) => retries.push(r) }).catch((e: unknown) => e);
    assert.instance(error, Error);
    const said = 'the libguestfs appliance listed its disks as [/dev/sda, /dev/sdd], not [/dev/sda, /dev/sdb]';
    assert.is((error as Error).message, said);
    assert.equal(retries, [said]);
    const lines = await calls();
    assert.is(lines.filter((l) => l.startsWith('--listen')).length, 2, 'launched twice');
    assert.is(lines.filter((l) => l.endsWith('-- run')).length, 2);
  });
});
names.run();
