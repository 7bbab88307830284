/**
 * kept.json forged (issue 32): each case is a record someone else could have
 * written into a kept build's folder, read back through readKept and the
 * checks resume and shell run before they open a disk or load a profile. No
 * VM and no appliance: records, links and qemu-img overlays in a temp folder.
 */
import { chmod, chown, link, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from './helpers/rejects.ts';
import { timed } from './helpers/timing.ts';
import { run } from '../src/exec/run.ts';
import { readKept, type KeptBuild } from '../src/debug/kept.ts';
import { checkedKeptDisk, recordProblem } from '../src/debug/kept-check.ts';
import { resumeFlags } from '../src/commands/build-flags.ts';
import { Logger } from '../src/log.ts';
import { runBuild } from '../src/pipeline/pipeline.ts';
import { loadProfileOrThrow } from '../src/loader/index.ts';
import { untrustedFileProblem } from '../src/util/trusted-path.ts';

const root = resolve(import.meta.dirname, '..');
const tmp = await mkdtemp(join(tmpdir(), 'gf-kept-'));
process.env.XDG_CACHE_HOME = join(tmp, 'cache');
const work = join(tmp, 'cache', 'guestforge', 'work');
const stages = join(tmp, 'cache', 'guestforge', 'stages');
await mkdir(stages, { recursive: true });

let serial = 0;
/** A fresh kept build folder for profile p with `record` (over a valid one) as its kept.json. */
async function keptFolder(record: Record<string, unknown> = {}): Promise<string> {
  serial += 1;
  const dir = join(work, `p-${serial.toString(16).padStart(12, '0')}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, 'kept.json'), JSON.stringify({ ...validRecord(dir), ...record }), { mode: 0o600 });
  return dir;
}

function validRecord(dir: string) {
  return {
    id: 'ignored', workDir: '/ignored', profileName: 'p', profileFiles: [join(root, 'profiles', 'debian-12-hpc.yaml')],
    options: { accel: 'tcg' }, reason: 'break', stage: 'inject', plan: ['base', 'provision', 'seal', 'inject', 'verify', 'finalize'], resumeIndex: 3,
    since: new Date().toISOString(), inputs: {}, state: { timings: [], warnings: [] }, resumeDisk: { path: join(dir, 'kept-0000.qcow2'), format: 'qcow2' },
  };
}

async function qcow2(path: string, backing?: { path: string; format: string }): Promise<void> {
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', ...(backing ? ['-b', backing.path, '-F', backing.format] : []), path, '16M']);
}

const reading = timed(suite('kept.json as read back: a record that is not ours is a reason, not a build'));

reading('a record as keepBuild writes it reads back; the folder, id and sockets come from where it lies', async () => {
  const dir = await keptFolder({ vm: { pid: 4242, consoleSocket: '/elsewhere/console.sock', qmpSocket: '/elsewhere/qmp.sock' } });
  await qcow2(join(dir, 'kept-0000.qcow2'));
  const kept = await readKept(dir) as KeptBuild;
  assert.type(kept, 'object', String(kept));
  assert.is(kept.id, dir.split('/').at(-1));
  assert.is(kept.workDir, dir);
  assert.is(kept.vm?.qmpSocket, join(dir, 'qmp.sock'));
  await checkedKeptDisk(kept, kept.resumeDisk!, 'resume');
});

reading('what resume writes to, signs with and lets a profile read is not read from the record: an old record\'s -o, --sign-key, --connect, --allow-host-path are dropped', async () => {
  const dir = await keptFolder({ options: { accel: 'kvm', outDir: '/etc', signKey: 'release@example.org', smoke: false, build: { backend: 'libvirt', connect: 'qemu+ssh://elsewhere/system' }, allowHostPaths: ['/etc', '/root'] }, state: { timings: [], warnings: [], packageDir: '/etc/cron.d' } });
  const kept = await readKept(dir) as KeptBuild;
  assert.equal(kept.options, { accel: 'kvm' });
  assert.equal(kept.state, { timings: [], warnings: [] });
  // The resume line repeats the running command's own flags instead.
  assert.equal(resumeFlags({ outDir: '/srv/out', smoke: false, signKey: 'me@host', connect: 'qemu:///system', allowHostPaths: ['/srv/shared', '/opt/osv'] }), ['-o', '/srv/out', '--no-smoke', '--sign-key', 'me@host', '--connect', 'qemu:///system', '--allow-host-path', '/srv/shared', '--allow-host-path', '/opt/osv']);
  assert.equal(resumeFlags({ outDir: 'out', smoke: true, allowHostPaths: [] }), ['-o', 'out']);
});

reading('a resume point after verify is refused by the record check and again by the pipeline, whatever the record says', async () => {
  const dir = await keptFolder({ resumeIndex: 5, stage: 'finalize' });
  assert.match(await readKept(dir) as string, /comes after verify, which a resume never skips/);
  assert.is(recordProblem({ ...validRecord(dir), resumeIndex: 4 }, 'p-000000000abc'), undefined, 'at verify itself is fine');
  const loaded = await loadProfileOrThrow(join(root, 'profiles', 'debian-12-hpc.yaml'));
  const kept = { ...validRecord(dir), id: `${loaded.profile.name}-000000000001`, resumeIndex: 5 } as unknown as KeptBuild;
  await rejects(runBuild(loaded, { outDir: join(tmp, 'never'), smoke: false, keepWork: false, noCache: true, resume: { kept } }, new Logger({ verbose: false }), new AbortController().signal), /would start at finalize, after verify; a resume never skips verify/);
});

reading('fields that do not fit: unknown stages, a profile name that is not its folder\'s, another accelerator, a bad pid', () => {
  const id = 'p-000000000abc';
  const good = validRecord(join(work, id));
  assert.is(recordProblem(good, id), undefined);
  assert.match(recordProblem({ ...good, plan: ['base', 'rm -rf /'] }, id)!, /not a list of stages/);
  assert.match(recordProblem({ ...good, profileName: 'q' }, id)!, /profile name does not match/);
  assert.match(recordProblem(good, 'p-abc')!, /profile name does not match/, 'resume makes its work folder from the name and a 12-digit nonce');
  assert.match(recordProblem({ ...good, options: { accel: 'kvm,x=y' } }, id)!, /accelerator/);
  assert.match(recordProblem({ ...good, vm: { pid: 1 } }, id)!, /VM pid/);
  assert.match(recordProblem({ ...good, resumeDisk: { path: 'x', format: 'vmdk' } }, id)!, /a path and a format/);
  assert.match(recordProblem({ ...good, state: { timings: [], warnings: [], base: { source: 's', cached: false, sha256: 'xyz' } } }, id)!, /carried state/);
  assert.match(recordProblem([], id)!, /holds no record/);
});

reading('the record file and its folder must be ours alone: a link, a file others can write, another user\'s file or folder', async () => {
  const linked = await keptFolder();
  await writeFile(join(tmp, 'elsewhere.json'), JSON.stringify(validRecord(linked)));
  await rm(join(linked, 'kept.json'));
  await symlink(join(tmp, 'elsewhere.json'), join(linked, 'kept.json'));
  assert.match(await readKept(linked) as string, /kept\.json is not a regular file/);
  const open = await keptFolder();
  await chmod(join(open, 'kept.json'), 0o666);
  assert.match(await readKept(open) as string, /can be written by others \(mode 666\)/);
  const theirs = await keptFolder();
  await chown(join(theirs, 'kept.json'), 65534, 65534);
  assert.match(await readKept(theirs) as string, /kept\.json belongs to uid 65534/);
  const theirFolder = await keptFolder();
  await chown(theirFolder, 65534, 65534);
  assert.match(await readKept(theirFolder) as string, /belongs to uid 65534, not to us/);
  const big = await keptFolder({ error: 'x'.repeat(2 * 1024 * 1024) });
  assert.match(await readKept(big) as string, /bytes, not a record guestforge wrote/);
});

reading('disks by real path in the folder, no link on the way: a link, a linked subfolder, "..", a second name, another folder', async () => {
  const cases: [string, (dir: string) => Promise<string>, RegExp][] = [
    ['a disk that is a link to a file outside', async (dir) => {
      await writeFile(join(tmp, 'root-only'), 'secret\n', { mode: 0o600 });
      await symlink(join(tmp, 'root-only'), join(dir, 'kept-0000.qcow2'));
      return join(dir, 'kept-0000.qcow2');
    }, /kept-0000\.qcow2 is a symbolic link/],
    ['a disk under a subfolder that is a link', async (dir) => {
      await mkdir(join(tmp, 'outside-dir'), { recursive: true });
      await qcow2(join(tmp, 'outside-dir', 'd.qcow2'));
      await symlink(join(tmp, 'outside-dir'), join(dir, 'sub'));
      return join(dir, 'sub', 'd.qcow2');
    }, /sub is a symbolic link/],
    ['a path that climbs out with ..', async (dir) => `${dir}/../p-000000000001/kept-0000.qcow2`, /is not a path inside/],
    ['a disk with a second name (a hard link)', async (dir) => {
      await qcow2(join(tmp, 'other-name.qcow2'));
      await link(join(tmp, 'other-name.qcow2'), join(dir, 'kept-0000.qcow2'));
      return join(dir, 'kept-0000.qcow2');
    }, /has 2 names/],
    ['a disk in the stage cache', async () => {
      await qcow2(join(stages, 'base-x.qcow2'));
      return join(stages, 'base-x.qcow2');
    }, /is not a path inside/],
  ];
  for (const [what, make, why] of cases) {
    const dir = await keptFolder();
    const path = await make(dir);
    await writeFile(join(dir, 'kept.json'), JSON.stringify({ ...validRecord(dir), resumeDisk: { path, format: 'qcow2' } }), { mode: 0o600 });
    const said = await readKept(dir);
    assert.type(said, 'string', what);
    assert.match(said as string, /its disks lie outside its folder/, what);
    assert.match(said as string, why, what);
  }
});

reading('a disk that is gone leaves the record readable (discard works); shell and resume then refuse it', async () => {
  const dir = await keptFolder();
  const kept = await readKept(dir) as KeptBuild;
  assert.type(kept, 'object');
  await rejects(checkedKeptDisk(kept, kept.resumeDisk!, 'resume'), /kept-0000\.qcow2 does not exist/);
});

const chains = timed(suite('the resume disk\'s backing chain: the folder, the stage cache and the profile\'s base image only'));

chains('an overlay backed by a file outside (a root-only file stands for it) is refused; so is one backed through a link', async () => {
  const secret = join(tmp, 'shadow-like');
  await writeFile(secret, 'root:$6$x$y:19000::::::\n'.repeat(1000), { mode: 0o600 });
  const dir = await keptFolder();
  await qcow2(join(dir, 'kept-0000.qcow2'), { path: secret, format: 'raw' });
  const kept = await readKept(dir) as KeptBuild;
  await rejects(checkedKeptDisk(kept, kept.resumeDisk!, 'resume'), /is backed by .*shadow-like, outside/);
  const viaLink = await keptFolder();
  await symlink(secret, join(viaLink, 'base.raw'));
  await qcow2(join(viaLink, 'kept-0000.qcow2'), { path: join(viaLink, 'base.raw'), format: 'raw' });
  const k2 = await readKept(viaLink) as KeptBuild;
  await rejects(checkedKeptDisk(k2, k2.resumeDisk!, 'resume'), /is backed by .*shadow-like, outside/);
  await checkedKeptDisk(k2, k2.resumeDisk!, 'resume', [secret]).then(() => undefined, (e: Error) => assert.unreachable(`a base image the profile names is fine: ${e.message}`));
});

chains('backed by a stage cache entry or a disk of the folder: accepted; a record saying raw for a qcow2: refused', async () => {
  const dir = await keptFolder();
  await qcow2(join(stages, 'inject-0123.qcow2'));
  await qcow2(join(dir, 'seal.qcow2'), { path: join(stages, 'inject-0123.qcow2'), format: 'qcow2' });
  await qcow2(join(dir, 'kept-0000.qcow2'), { path: join(dir, 'seal.qcow2'), format: 'qcow2' });
  const kept = await readKept(dir) as KeptBuild;
  await checkedKeptDisk(kept, kept.resumeDisk!, 'resume');
  await rejects(checkedKeptDisk(kept, { ...kept.resumeDisk!, format: 'raw' }, 'resume'), /is a qcow2 image, but the kept build's record says raw/);
});

const profiles = timed(suite('the profile a record names is loaded only if we may trust it'));

profiles('ours and closed: fine, also through a link; another user\'s, one others can write, or in a folder others can write: named', async () => {
  const dir = join(tmp, 'profiles');
  await mkdir(dir, { mode: 0o755 });
  const mine = join(dir, 'mine.yaml');
  await writeFile(mine, 'name: p\n', { mode: 0o644 });
  assert.is(await untrustedFileProblem(mine), undefined);
  await symlink(mine, join(tmp, 'link.yaml'));
  assert.is(await untrustedFileProblem(join(tmp, 'link.yaml')), undefined, 'the file a link reaches is what is read');
  const theirs = join(dir, 'theirs.yaml');
  await writeFile(theirs, 'name: p\n');
  await chown(theirs, 65534, 65534);
  assert.match((await untrustedFileProblem(theirs))!, /belongs to uid 65534/);
  const open = join(dir, 'open.yaml');
  await writeFile(open, 'name: p\n');
  await chmod(open, 0o666);
  assert.match((await untrustedFileProblem(open))!, /can be written by other users \(mode 666\)/);
  const openDir = join(tmp, 'open-dir');
  await mkdir(openDir);
  await chmod(openDir, 0o777);
  await writeFile(join(openDir, 'p.yaml'), 'name: p\n');
  assert.match((await untrustedFileProblem(join(openDir, 'p.yaml')))!, /open-dir can be written by other users/);
  assert.match((await untrustedFileProblem(join(dir, 'none.yaml')))!, /does not exist/);
});

profiles.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

reading.run();
chains.run();
profiles.run();
