/**
 * A look inside a failed build, without a VM: the flags' checks, the kept
 * record, the terminal question (driven through a pty by script(1)), and what
 * `cache prune` does with kept builds. The kept build VM itself (console,
 * SSH, discard) and --break/shell/resume are proven in e2e.test.ts.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../src/errors.ts';
import { parsePublicKey, debugOptions } from '../src/commands/build-flags.ts';
import { parseChoice } from '../src/debug/ask.ts';
import { breakIndex } from '../src/pipeline/pipeline.ts';
import { qemuArgs } from '../src/vm/qemu-args.ts';
import { baseStage, finalizeStage, injectStage, provisionStage, smokeStage, verifyStage } from '../src/stages/index.ts';
import type { Stage } from '../src/stages/types.ts';
import { writeWrongShaProfile } from './helpers/wrong-sha.ts';
import { timed } from './helpers/timing.ts';
import { onPty } from './helpers/pty.ts';
import { killAll, release, run, start } from '../src/exec/run.ts';
import { stopKeptVm } from '../src/vm/qemu.ts';
import { pidAlive } from '../src/exec/lock.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const tmp = await mkdtemp(join(tmpdir(), 'gf-debug-'));
const cache = join(tmp, 'cache');
const env = { XDG_CACHE_HOME: cache, CI: '1' };
const guestforge = (args: string[], input?: string) => execa('node', [cli, ...args], { env, reject: false, all: true, timeout: 120_000, ...(input !== undefined ? { input } : {}) });

const pub = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtyFMeJ0G2i0pC2Lq7n4qn8J8+Cw9y0n8Cq5f3d0k4h admin@host';

/** The promise rejects with a message matching `pattern`. */
async function rejects(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof Error, `expected a rejection matching ${pattern}`);
  assert.match((error as Error).message, pattern);
}

const flags = timed(suite('debug flags'));

flags('--debug-ssh-key takes one public key line; a private key or anything else is refused naming the file', () => {
  assert.is(parsePublicKey(`${pub}\n`, 'k.pub'), pub);
  assert.is(parsePublicKey(`# mine\n${pub}\n`, 'k.pub'), pub);
  assert.throws(() => parsePublicKey('-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n', 'id_ed25519'), (e: Error) => e instanceof UsageError && /id_ed25519 is a private key/.test(e.message) && /id_ed25519\.pub/.test((e as UsageError).hint ?? ''));
  assert.throws(() => parsePublicKey(`${pub}\n${pub}\n`, 'two.pub'), /two\.pub: expected one OpenSSH public key line/);
  assert.throws(() => parsePublicKey('ssh-ed25519 AAAA$(reboot)\n', 'x.pub'), /expected one OpenSSH public key line/);
  assert.throws(() => parsePublicKey('ssh-ed25519 AAAA comment\u0007bell\n', 'x.pub'), /expected one/);
});

flags('--on-error, --debug-ssh-key and --break are checked before anything starts', async () => {
  await rejects(debugOptions({ 'on-error': 'maybe' }, undefined), /--on-error must be cleanup, keep or ask, not "maybe"/);
  await rejects(debugOptions({ 'on-error': 'keep' }, 'libvirt'), /qemu backend/);
  await rejects(debugOptions({ 'debug-ssh-key': '/nonexistent.pub' }, undefined), /add --on-error keep/);
  await rejects(debugOptions({ 'on-error': 'keep', 'debug-ssh-key': join(tmp, 'missing.pub') }, undefined), /missing\.pub: no such file/);
  await rejects(debugOptions({ break: 'inject' }, undefined), /before:STAGE or after:STAGE, not "inject"/);
  await rejects(debugOptions({ break: 'before:nosuch' }, undefined), /not "before:nosuch"/);
  const key = join(tmp, 'k.pub');
  await writeFile(key, `${pub}\n`);
  assert.equal(await debugOptions({ 'on-error': 'keep', 'debug-ssh-key': key, break: 'after:provision' }, 'qemu'), { onError: 'keep', debugSshKey: pub, breakAt: { when: 'after', stage: 'provision' } });
  assert.equal(await debugOptions({}, undefined), { onError: 'cleanup' });
});

flags('--break is placed in the plan: the stage before which the build stops; the first and last points are refused', () => {
  const plan: Stage[] = [baseStage, provisionStage, injectStage, verifyStage, finalizeStage, smokeStage];
  assert.is(breakIndex(plan, { when: 'before', stage: 'inject' }), 2);
  assert.is(breakIndex(plan, { when: 'after', stage: 'inject' }), 3);
  assert.is(breakIndex(plan, undefined), undefined);
  assert.throws(() => breakIndex(plan, { when: 'before', stage: 'base' }), /nothing has run yet/);
  assert.throws(() => breakIndex(plan, { when: 'after', stage: 'smoke' }), /it is the last stage/);
  assert.throws(() => breakIndex(plan.slice(0, 5), { when: 'before', stage: 'smoke' }), /no smoke stage \(it runs base, provision, inject, verify, finalize\)/);
});

flags('a VM that may be kept: its console is a unix socket server that still logs every byte', () => {
  const argv = qemuArgs({ disk: '/d.qcow2', diskFormat: 'qcow2', memoryMiB: 512, cpus: 1, accel: 'tcg', serialLog: '/w/a,b.log', qmpSocket: '/w/qmp.sock', unsafeCache: true, consoleSocket: '/w/console.sock' });
  assert.is(argv[argv.indexOf('-chardev') + 1], 'socket,id=serial0,path=/w/console.sock,server=on,wait=off,logfile=/w/a,,b.log');
  const plain = qemuArgs({ disk: '/d.qcow2', diskFormat: 'qcow2', memoryMiB: 512, cpus: 1, accel: 'tcg', serialLog: '/w/s.log', qmpSocket: '/w/qmp.sock', unsafeCache: true });
  assert.is(plain[plain.indexOf('-chardev') + 1], 'file,id=serial0,path=/w/s.log');
});

flags('a VM that may be kept runs detached: its own process group, and once released killAll leaves it running; stopKeptVm ends it', async () => {
  const log = join(tmp, 'detached.log');
  const child = start(['sleep', '60'], { detached: true, stderrFile: log });
  const pgid = (await run(['ps', '-o', 'pgid=', '-p', String(child.pid)])).stdout.trim();
  assert.is(pgid, String(child.pid), 'its own process group: a Ctrl-C on the terminal does not reach it');
  release(child);
  await killAll('SIGTERM');
  assert.ok(pidAlive(child.pid!), 'released: not ours to kill any more');
  await stopKeptVm(child.pid!, join(tmp, 'no-qmp.sock'));
  await child;
  assert.not.ok(pidAlive(child.pid!));
  assert.throws(() => start(['sleep', '1'], { detached: true }), /needs stderrFile/);
});

flags('the terminal question takes c/k/r or the words; anything else asks again', () => {
  assert.is(parseChoice('k\n'), 'keep');
  assert.is(parseChoice(' Retry '), 'retry');
  assert.is(parseChoice('cleanup'), 'cleanup');
  assert.is(parseChoice('y'), undefined);
  assert.is(parseChoice(''), undefined);
});

const cmds = timed(suite('kept builds (no VM: a build that fails in its first stage)'));

cmds('a bad or unknown id is refused, naming the kept builds; builds says none is kept', async () => {
  // Every command finds its build through findKept: two of them stand for all four (each start costs ~2 s under tsx).
  const bad = await guestforge(['shell', '../../etc']);
  assert.is(bad.exitCode, 2, bad.all);
  assert.match(bad.all, /is not a build id/);
  const unknown = await guestforge(['discard', 'nope-0123']);
  assert.is(unknown.exitCode, 2, unknown.all);
  assert.match(unknown.all, /no kept build "nope-0123"/);
  const none = await guestforge(['builds']);
  assert.is(none.exitCode, 0, none.all);
  assert.match(none.stdout, /no build is kept/);
  const many = await guestforge(['build', 'a.yaml', 'b.yaml', '--on-error', 'keep']);
  assert.is(many.exitCode, 2, many.all);
  assert.match(many.all, /are for one profile/);
});

cmds('--on-error keep is refused when the profile or --connect chooses libvirt (its build VMs are not kept yet)', async () => {
  const profile = await writeWrongShaProfile(join(tmp, 'libvirt'));
  await writeFile(profile, `${await readFile(profile, 'utf8')}\nbuild: { backend: libvirt }\n`);
  const r = await guestforge(['build', profile, '-o', join(tmp, 'libvirt', 'out'), '--on-error', 'keep']);
  assert.is(r.exitCode, 2, r.all);
  assert.match(r.all, /libvirt's build VMs are not kept yet/);
  assert.match(r.all, /add --backend qemu/);
});

cmds('--on-error ask without a terminal cleans up and says so', async () => {
  const profile = await writeWrongShaProfile(join(tmp, 'notty'));
  const r = await guestforge(['build', profile, '-o', join(tmp, 'notty', 'out'), '--on-error', 'ask']);
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.all, /no terminal to ask on, so the build is cleaned up/);
  assert.equal(await readdir(join(cache, 'guestforge', 'work')).catch(() => []), []);
});

cmds('--on-error ask on a terminal: retry runs the stage again, keep keeps the build; builds lists it; discard removes it', async () => {
  const profile = await writeWrongShaProfile(join(tmp, 'tty'));
  const question = /\[c\]leanup, \[k\]eep, \[r\]etry stage\?/;
  const r = await onPty(['node', cli, 'build', profile, '-o', join(tmp, 'tty', 'out'), '--on-error', 'ask'], ['what', 'r', 'k'].map((a) => ({ expect: question, send: `${a}\r` })), { env, timeoutMs: 120_000 });
  assert.is(r.exitCode, 1, r.output);
  assert.is(r.output.split('[c]leanup, [k]eep, [r]etry stage?').length - 1, 3, `asked again after "what", and after the retry failed: ${r.output}`);
  assert.match(r.output, /base: running it again, as asked/);
  assert.match(r.output, /sha256 mismatch/);
  const id = /the build is kept as (wrong-sha-[0-9a-f]{12}):/.exec(r.output)?.[1];
  assert.ok(id, r.output);
  assert.match(r.output, new RegExp(`resume: +guestforge resume ${id}`));
  const list = await guestforge(['builds', '--json']);
  const listed = JSON.parse(list.stdout) as { id: string; stage: string; reason: string; vmRunning: boolean }[];
  assert.equal(listed.map((b) => [b.id, b.stage, b.reason, b.vmRunning]), [[id, 'base', 'failed', false]]);
  const console = await guestforge(['console', id!]);
  assert.is(console.exitCode, 1, console.all);
  assert.match(console.all, /has no running VM/);
  const shell = await guestforge(['shell', id!]);
  assert.is(shell.exitCode, 1, shell.all);
  assert.match(shell.all, /has no disk yet: it stopped in its first stage \(base\)/);
  const d = await guestforge(['discard', id!]);
  assert.is(d.exitCode, 0, d.all);
  assert.equal(await readdir(join(cache, 'guestforge', 'work')), []);
});

cmds('cache prune keeps a kept build (its owner has exited) unless it is older than --older-than', async () => {
  const work = join(cache, 'guestforge', 'work');
  const make = async (name: string, since: string, kept: boolean) => {
    await mkdir(join(work, name), { recursive: true });
    await writeFile(join(work, name, 'owner.json'), JSON.stringify({ pid: 999_999_999, host: hostname(), started: since, profile: 'p' }));
    if (kept) await writeFile(join(work, name, 'kept.json'), JSON.stringify({ id: name, workDir: join(work, name), profileName: 'p', since, stage: 'inject', reason: 'break', plan: ['base', 'inject'], resumeIndex: 1, inputs: {}, state: { timings: [], warnings: [] }, options: { outDir: '/x', smoke: true, accel: 'tcg' }, profileFiles: ['/x.yaml'] }));
  };
  await make('p-000000000001', new Date().toISOString(), true);
  await make('p-000000000002', new Date(Date.now() - 3 * 86_400_000).toISOString(), true);
  await make('p-000000000003', new Date().toISOString(), false);
  const plain = await guestforge(['cache', 'prune']);
  assert.is(plain.exitCode, 0, plain.all);
  assert.ok(existsSync(join(work, 'p-000000000001')) && existsSync(join(work, 'p-000000000002')), plain.all);
  assert.not.ok(existsSync(join(work, 'p-000000000003')), 'a dead build that was not kept goes');
  const old = await guestforge(['cache', 'prune', '--older-than', '2d']);
  assert.is(old.exitCode, 0, old.all);
  assert.match(old.stdout, /removed kept build p-000000000002/);
  assert.ok(existsSync(join(work, 'p-000000000001')));
  assert.not.ok(existsSync(join(work, 'p-000000000002')));
  await rm(join(work, 'p-000000000001'), { recursive: true });
});

cmds('a kept.json guestforge did not write (a pid of -1, a disk outside the folder) is refused by name, and nothing is signalled', async () => {
  const work = join(cache, 'guestforge', 'work');
  const record = { profileName: 'p', stage: 'inject', reason: 'failed', plan: ['base', 'inject'], resumeIndex: 1, inputs: {}, state: { timings: [], warnings: [] }, options: { outDir: '/x', smoke: true, accel: 'tcg' }, profileFiles: ['/x.yaml'], since: new Date().toISOString() };
  const cases: [string, object, RegExp, string][] = [
    ['p-00000000000a', { ...record, vm: { pid: -1, consoleSocket: '/', qmpSocket: '' } }, /its VM pid is not valid/, 'discard'],
    ['p-00000000000b', { ...record, disk: { path: join(cache, 'guestforge', 'stages', 'base-x.qcow2'), format: 'qcow2' } }, /its disks lie outside its folder/, 'shell'],
    ['p-00000000000c', { ...record, resumeIndex: 7 }, /resume point is not valid/, 'resume'],
  ];
  for (const [name, kept, why, command] of cases) {
    await mkdir(join(work, name), { recursive: true });
    await writeFile(join(work, name, 'kept.json'), JSON.stringify(kept));
    const r = await guestforge([command, name]);
    assert.is(r.exitCode, 1, r.all);
    assert.match(r.all, /has a record guestforge did not write/);
    assert.match(r.all, why);
    assert.ok(existsSync(join(work, name)), 'left for the owner to look at');
  }
  const listed = await guestforge(['builds', '--json']);
  assert.equal(JSON.parse(listed.stdout), [], 'builds lists no record it cannot trust');
  for (const [name] of cases) await rm(join(work, name), { recursive: true });
  assert.ok(pidAlive(process.pid), 'still here: nothing was signalled');
});

cmds.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

flags.run();
cmds.run();
