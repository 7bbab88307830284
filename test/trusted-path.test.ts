/**
 * Folders guestforge writes and removes in as root are checked before use:
 * -o (and its logs folder), smoke's and rehearse's --log-dir, publish --to.
 * Each case is a repro from the security review (issue 32, item 4).
 */
import { chmod, chown, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureTrustedDir, untrustedPathProblem } from '../src/util/trusted-path.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const tmp = await mkdtemp(join(tmpdir(), 'gf-trusted-'));
const env = { XDG_CACHE_HOME: join(tmp, 'cache'), CI: '1' };

const paths = suite('trusted folders');

paths('links, other users\' folders and folders others can write are named; /tmp above ours and missing parts are fine', async () => {
  const mine = join(tmp, 'mine');
  await mkdir(mine, { mode: 0o755 });
  assert.is(await untrustedPathProblem(mine), undefined);
  assert.is(await untrustedPathProblem(join(mine, 'not', 'yet')), undefined, 'what is missing is ours to make');
  await symlink(mine, join(tmp, 'link'));
  assert.match((await untrustedPathProblem(join(tmp, 'link', 'out')))!, /link is a symbolic link/);
  const theirs = join(tmp, 'theirs');
  await mkdir(theirs);
  await chown(theirs, 65534, 65534);
  assert.match((await untrustedPathProblem(join(theirs, 'out')))!, /belongs to uid 65534, another user/);
  const open = join(tmp, 'open');
  await mkdir(open);
  await chmod(open, 0o777);
  assert.match((await untrustedPathProblem(open))!, /can be written by other users \(mode 777\)/);
  await chmod(open, 0o1777);
  assert.match((await untrustedPathProblem(open))!, /mode 1777/, 'the folder itself, even sticky');
  assert.is(await untrustedPathProblem(join(open, 'below')), undefined, 'a sticky folder above ours, like /tmp');
  // The path checked is the path made: a/link/../b is a/b, never made through the link.
  await mkdir(join(mine, 'deep'));
  await symlink(join(mine, 'deep'), join(tmp, 'deep-link'));
  const made = await ensureTrustedDir(join(tmp, 'deep-link', '..', 'via-dots', 'logs'), '--log-dir');
  assert.is(made, join(tmp, 'via-dots', 'logs'));
  assert.ok(existsSync(made));
  assert.not.ok(existsSync(join(mine, 'via-dots')), 'nothing made beside the link\'s target (the kernel\'s reading of deep-link/..)');
});

paths('build -o whose logs folder is a link: exit 2 before anything is removed, the victim untouched', async () => {
  const victim = join(tmp, 'victim');
  await mkdir(join(victim, 'debian-12-hpc'), { recursive: true });
  await writeFile(join(victim, 'debian-12-hpc', 'published.qcow2'), 'an image someone needs');
  const out = join(tmp, 'out');
  await mkdir(out);
  await symlink(victim, join(out, 'logs'));
  const r = await execa('node', [cli, 'build', join(root, 'profiles', 'debian-12-hpc.yaml'), '-o', out, '--accel', 'tcg'], { env, reject: false, all: true, timeout: 120_000 });
  assert.is(r.exitCode, 2, r.all);
  assert.match(r.all, /-o .*out: .*\/out\/logs is a symbolic link/);
  assert.is(await readFile(join(victim, 'debian-12-hpc', 'published.qcow2'), 'utf8'), 'an image someone needs');
});

paths('smoke and rehearse --log-dir through a link: exit 2, nothing written there, no work folder left', async () => {
  const target = join(tmp, 'elsewhere');
  await mkdir(target);
  await symlink(target, join(tmp, 'logs-link'));
  const image = join(tmp, 'x.qcow2');
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', image, '16M']);
  for (const command of ['smoke', 'rehearse']) {
    const r = await execa('node', [cli, command, image, '--log-dir', join(tmp, 'logs-link', 'sub'), '--accel', 'tcg'], { env, reject: false, all: true, timeout: 120_000 });
    assert.is(r.exitCode, 2, `${command}: ${r.all}`);
    assert.match(r.all, /--log-dir: .*logs-link is a symbolic link/, command);
    assert.not.ok(existsSync(join(target, 'sub')), command);
  }
  assert.not.ok(existsSync(join(tmp, 'cache', 'guestforge', 'work')) && (await execa('ls', [join(tmp, 'cache', 'guestforge', 'work')])).stdout.trim() !== '', 'no work folder left');
});

paths.after(() => rm(tmp, { recursive: true, force: true }));
paths.run();
