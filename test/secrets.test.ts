/**
 * Secrets on disk (issue 16): seeds, work folders, cache entries and logs
 * that hold user-data are owner-only, and what logs and `plan` show has
 * hashes, keys and marked values replaced by <redacted>.
 */
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { StageCache } from '../src/cache/store.ts';
import { buildSeedIso } from '../src/cloudinit/seed.ts';
import { redactUserData, renderCloudConfig } from '../src/cloudinit/yaml.ts';
import { run } from '../src/exec/run.ts';
import { buildUserData } from '../src/os/linux-seed.ts';
import { driverFor } from '../src/os/index.ts';
import { loadProfileOrThrow } from '../src/loader/index.ts';
import { makeWorkDir } from '../src/util/workdir.ts';
import { redactUrl, redactUrlsIn } from '../src/util/url.ts';
import { aptAuthPath, splitMirrorUrl, splitSourceLines } from '../src/os/debian/apt-auth.ts';
import { bootstrapKey, bootstrapMirror, bootstrapSource, mmdebstrapArgs } from '../src/os/debian/bootstrap.ts';
import { secretFilePaths } from '../src/cloudinit/userdata.ts';
import { writeOwnerOnly } from '../src/util/fs.ts';
import { download } from '../src/stages/base.ts';
import { baseDependency } from '../src/publish/records.ts';
import { provenanceStatement } from '../src/publish/provenance.ts';
import type { Profile } from '../src/profile/schema.ts';
import { rejects } from './helpers/rejects.ts';

const root = resolve(import.meta.dirname, '..');
const tmp = await mkdtemp(join(tmpdir(), 'gf-secrets-'));
const modeOf = async (p: string) => (await stat(p)).mode & 0o777;
const hash = '$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmn';
const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE7jXW2xg7l2secretsecretsecretsecretsecret me@host';

test('redaction: hashes, keys, chpasswd and secret-marked files; the rest is kept', () => {
  const text = renderCloudConfig({
    users: [{ name: 'hpc', hashed_passwd: hash, ssh_authorized_keys: [key], shell: '/bin/bash' }],
    chpasswd: { users: [{ name: 'root', password: 'hunter2' }] },
    write_files: [{ path: '/etc/token', content: 'TOKEN-123', secret: true }, { path: '/etc/motd', content: 'hello' }],
    runcmd: [['echo', 'hi']],
  });
  const shown = redactUserData(text);
  for (const secret of [hash, 'secretsecret', 'hunter2', 'TOKEN-123']) assert.not.ok(shown.includes(secret), `${secret} leaked:\n${shown}`);
  assert.match(shown, /hashed_passwd: <redacted>/);
  assert.match(shown, /chpasswd: <redacted>/);
  for (const kept of ['/bin/bash', 'hello', '/etc/token', 'echo']) assert.ok(shown.includes(kept), kept);
  assert.match(redactUserData('#!/bin/sh\necho $SECRET\n'), /redacted: not a cloud-config/);
});

test('seed folder, user-data and ISO are owner-only (real xorriso)', async () => {
  const dir = join(tmp, 'seed');
  const iso = join(tmp, 'seed.iso');
  await buildSeedIso(dir, { userData: '#cloud-config\n', metaData: 'instance-id: x\n' }, iso);
  assert.is(await modeOf(dir), 0o700);
  assert.is(await modeOf(join(dir, 'user-data')), 0o600);
  assert.is(await modeOf(iso), 0o600);
});

test('work folders, their owner note and cache entries are owner-only', async () => {
  const env = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = join(tmp, 'xdg');
  try {
    const work = await makeWorkDir('w-1', 'test');
    assert.is(await modeOf(work), 0o700);
    assert.is(await modeOf(join(tmp, 'xdg', 'guestforge')), 0o700);
    assert.is(await modeOf(join(work, 'owner.json')), 0o600);
    assert.is(JSON.parse(await readFile(join(work, 'owner.json'), 'utf8')).pid, process.pid);
  } finally {
    process.env.XDG_CACHE_HOME = env;
  }
  const cache = new StageCache(join(tmp, 'stages'));
  const disk = join(tmp, 'd.qcow2');
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, '16M']);
  const entry = await cache.store(disk, { stage: 'provision', key: '0123456789abcdef', profile: 'p', guestforge: '0', parts: {} });
  assert.is(await modeOf(entry.path), 0o600);
  assert.is(await modeOf(entry.path.replace(/\.qcow2$/, '.json')), 0o600);
});

test('plan shows the seed with <redacted> for a password hash and SSH keys', async () => {
  const dir = join(root, 'profiles');
  const file = join(dir, `.test-secrets-${process.pid}.yaml`);
  const text = `${(await readFile(join(dir, 'debian-12-hpc.yaml'), 'utf8')).replace('    sudo: true\n', `    sudo: true\n    passwordHash: "${hash}"\n    sshKeys: ["${key}"]\n`)}cloudInit:\n  userData:\n    write_files:\n      - { path: /etc/site-token, content: TOKEN-XYZ, secret: true }\n`;
  await writeFile(file, text);
  try {
    const r = await execa('node', [join(root, 'bin', 'guestforge.js'), 'plan', file], { reject: false, env: { XDG_CACHE_HOME: join(tmp, 'plan-cache') } });
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /hashed_passwd: <redacted>/);
    assert.not.ok(r.stdout.includes(hash));
    assert.not.ok(r.stdout.includes('secretsecret'));
    assert.not.ok(r.stdout.includes('TOKEN-XYZ'), 'a write_files entry marked secret: true');
    // cloud-init gets the content, without our mark.
    const { profile } = await loadProfileOrThrow(file);
    const config = await buildUserData(profile, driverFor(profile.os.family), 'N') as { write_files: Record<string, unknown>[] };
    const token = config.write_files.find((f) => f.path === '/etc/site-token')!;
    assert.is(token.content, 'TOKEN-XYZ');
    assert.not.ok('secret' in token);
  } finally {
    await rm(file, { force: true });
  }
});

test.after(async () => {
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp).then(() => rm(tmp, { recursive: true }));
});
test('URLs with credentials or a query token are hidden in failed commands and plan (issue 32, item 7)', async () => {
  assert.is(redactUrlsIn("mmdebstrap bookworm /t 'deb http://alice:s3cret@mirror.example/debian bookworm main'"), "mmdebstrap bookworm /t 'deb http://<redacted>@mirror.example/debian bookworm main'");
  assert.is(redactUrlsIn('get https://host/img.qcow2?token=abc&x=1 now'), 'get https://host/img.qcow2?<redacted> now');
  assert.is(redactUrlsIn('plain http://host/debian and user@host'), 'plain http://host/debian and user@host');
  // A password with an unencoded @ or a quote (as shellQuote writes it) is hidden whole.
  assert.is(redactUrlsIn("'deb http://al:p@ss'\\''w@host/debian main'"), "'deb http://<redacted>@host/debian main'");
  const failed = await run(['sh', '-c', 'exit 3', 'sh', 'deb http://alice:s3cret@127.0.0.1:9/debian?token=abc bookworm main']).then(() => ({ hint: 'it succeeded' }), (e: unknown) => e as Error & { hint?: string });
  assert.match(failed.hint ?? '', /http:\/\/<redacted>@127\.0\.0\.1:9\/debian\?<redacted>/);
  assert.not.match(failed.hint ?? '', /s3cret|token/);
  const profile = join(tmp, 'cred-mirror.yaml');
  await writeFile(profile, `extends: ${join(root, 'profiles', 'debian-12-hpc.yaml')}\nname: cred-mirror\nbase:\n  bootstrap:\n    mirror: http://alice:s3cret@127.0.0.1:9/debian?token=abc\n`);
  const allow = ['--allow-host-path', join(root, 'profiles')]; // it extends a shipped profile from elsewhere
  for (const args of [['plan', profile, ...allow], ['plan', '--json', profile, ...allow]]) {
    const r = await execa('node', [join(root, 'bin', 'guestforge.js'), ...args], { env: { XDG_CACHE_HOME: join(tmp, 'cache') }, reject: false, all: true, timeout: 120_000 });
    assert.is(r.exitCode, 0, r.all);
    assert.not.match(r.all, /s3cret|alice|token=/, args.join(' '));
    if (args.includes('--json')) {
      // The build VM's seed has the auth file, its content shown <redacted>.
      const config = parseYaml((JSON.parse(r.stdout) as { seed: { userData: string } }).seed.userData, { version: '1.1' }) as { write_files: Record<string, unknown>[] };
      assert.equal(config.write_files.find((f) => f.path === aptAuthPath), { path: aptAuthPath, owner: 'root:root', permissions: '0600', content: '<redacted>' });
    }
  }
});

const credMirror = 'http://alice:s3cret@127.0.0.1:9/debian';
const withMirror = (profile: Profile, mirror: string): Profile => ({ ...profile, base: { ...profile.base, bootstrap: { ...profile.base.bootstrap!, mirror } } });
const noCredentials = (text: string, what: string) => assert.not.match(text, /s3cret|alice/, `${what}:\n${text}`);

test('a mirror URL splits into the URL apt is given and its apt_auth.conf line', async () => {
  assert.equal(splitMirrorUrl(credMirror), { url: 'http://127.0.0.1:9/debian', auth: 'machine http://127.0.0.1:9/debian/ login alice password s3cret' });
  // The scheme is always named: without one apt matches https only.
  assert.equal(splitMirrorUrl('https://bob@mirror.example/debian/'), { url: 'https://mirror.example/debian/', auth: 'machine https://mirror.example/debian/ login bob' });
  // The auth file takes the words as they are: percent-encoding is undone.
  assert.is(splitMirrorUrl('http://al%40ce:p%40ss%3Aw%23@mirror.example').auth, 'machine http://mirror.example/ login al@ce password p@ss:w#');
  assert.equal(splitMirrorUrl('http://mirror.example/debian'), { url: 'http://mirror.example/debian' }, 'no credentials: as written');
  for (const url of ['http://alice:two%20words@mirror.example/debian', 'http://:s3cret@mirror.example/debian', 'http://alice:bad%zz@mirror.example/']) {
    const error = await rejects(() => splitMirrorUrl(url), /user name or password that apt's auth file cannot hold/, url);
    noCredentials(error.message, url);
  }
  const split = splitSourceLines([`deb ${credMirror} bookworm main`, `deb ${credMirror} bookworm-updates main`, 'deb [arch=amd64] http://carol:pw2@127.0.0.1:9/security bookworm-security main', 'deb http://127.0.0.1:9/other bookworm main']);
  assert.equal(split.lines, ['deb http://127.0.0.1:9/debian bookworm main', 'deb http://127.0.0.1:9/debian bookworm-updates main', 'deb [arch=amd64] http://127.0.0.1:9/security bookworm-security main', 'deb http://127.0.0.1:9/other bookworm main']);
  assert.is(split.auth, 'machine http://127.0.0.1:9/debian/ login alice password s3cret\nmachine http://127.0.0.1:9/security/ login carol password pw2\n');
  assert.is(splitSourceLines(['deb http://127.0.0.1:9/debian bookworm main']).auth, '');
});

test('mmdebstrap: no credentials in its argv, an owner-only auth file its hooks put in the tree and take out, none in the cache key', async () => {
  const { profile } = await loadProfileOrThrow(join(root, 'profiles', 'debian-12-hpc.yaml'));
  const lines = [`deb ${credMirror} bookworm main`];
  const authFile = join(tmp, "work dir's", 'mirror-auth.conf');
  const argv = mmdebstrapArgs(profile, lines, '/t', [], authFile);
  noCredentials(argv.join('\n'), 'argv');
  assert.is(argv.at(-1), 'deb http://127.0.0.1:9/debian bookworm main');
  assert.throws(() => mmdebstrapArgs(profile, lines, '/t'), /give the auth file/);
  const plain = mmdebstrapArgs(profile, ['deb http://127.0.0.1:9/debian bookworm main'], '/t', [], authFile);
  assert.not.ok(plain.some((a) => a.includes(aptAuthPath) || a.startsWith('--setup-hook')), 'no hooks for a mirror without credentials');

  // The hooks as mmdebstrap runs them (sh -c HOOK exec TREE), on a folder in place of the tree.
  const work = join(tmp, "work dir's");
  await mkdir(work, { mode: 0o700 });
  await writeOwnerOnly(authFile, splitSourceLines(lines).auth);
  assert.is(await modeOf(authFile), 0o600);
  const tree = join(work, 'rootfs');
  const hook = (kind: string) => argv.filter((a) => a.startsWith(`--${kind}-hook=`)).map((a) => a.slice(`--${kind}-hook=`.length));
  assert.is(hook('setup').length, 1);
  await execa('sh', ['-c', hook('setup')[0]!, 'exec', tree]);
  assert.is(await readFile(join(tree, aptAuthPath), 'utf8'), 'machine http://127.0.0.1:9/debian/ login alice password s3cret\n');
  assert.is(await modeOf(join(tree, aptAuthPath)), 0o600);
  assert.match(hook('customize').at(-1)!, /^rm -f /, 'removed by the last customize hook, after customize.sh');
  await execa('sh', ['-c', hook('customize').at(-1)!, 'exec', tree]);
  assert.is(await stat(join(tree, aptAuthPath)).then(() => 'there', () => 'gone'), 'gone');

  // An auth file is written only where others cannot look.
  await mkdir(join(tmp, 'open'), { mode: 0o755 });
  await rejects(writeOwnerOnly(join(tmp, 'open', 'a.conf'), 'x'), /not owner-only/);

  const key = await bootstrapKey(profile, lines);
  assert.match(key, /^[0-9a-f]{16}$/);
  assert.is(await bootstrapKey(profile, lines), key, 'where the work folder is does not matter');
  assert.is.not(await bootstrapKey(profile, [`deb ${credMirror.replace('s3cret', 'other')} bookworm main`]), key, 'the credentials count, hashed');
  assert.is.not(await bootstrapKey(profile, ['deb http://127.0.0.1:9/debian bookworm main']), key);
});

test('the build VM gets the mirror\'s credentials in an owner-only auth file it removes last; logs show it <redacted>', async () => {
  const { profile: loaded } = await loadProfileOrThrow(join(root, 'profiles', 'debian-12-hpc.yaml'));
  const profile = withMirror(loaded, credMirror);
  const driver = driverFor('debian');
  const config = await buildUserData(profile, driver, 'N') as { write_files: Record<string, unknown>[]; runcmd: string[][] };
  const file = config.write_files.find((f) => f.path === aptAuthPath);
  assert.equal(file, { path: aptAuthPath, owner: 'root:root', permissions: '0600', content: 'machine http://127.0.0.1:9/debian/ login alice password s3cret\n' });
  assert.equal(config.runcmd.at(-1), ['rm', '-f', '--', aptAuthPath], 'after the profile\'s commands and every trim');
  const seed = await driver.buildSeed(profile, 'N');
  noCredentials(redactUserData(seed!.userData, await secretFilePaths(profile, (await driver.buildOnlyFiles?.(profile)) ?? [])), 'the logged user-data');
  const plain = await buildUserData(loaded, driver, 'N') as { write_files: Record<string, unknown>[] };
  assert.not.ok(plain.write_files.some((f) => f.path === aptAuthPath), 'no auth file for a mirror without credentials');
});

test('provenance and manifest name the base redacted: a credentialed mirror, a tokened image URL', async () => {
  const { profile } = await loadProfileOrThrow(join(root, 'profiles', 'debian-12-hpc.yaml'));
  const bases = [
    { source: bootstrapSource(profile, [`deb ${credMirror}?token=abc bookworm main`]), sha256: 'a'.repeat(64), cached: false },
    { source: redactUrl('https://alice:s3cret@127.0.0.1:9/img.qcow2?token=abc'), sha256: 'b'.repeat(64), cached: true },
    // As a cache entry made before sources were redacted would hold them.
    { source: 'https://alice:s3cret@127.0.0.1:9/img.qcow2?token=abc', sha256: 'b'.repeat(64), cached: true },
    { source: `mmdebstrap bookworm (important) from ${credMirror}`, sha256: 'c'.repeat(64), cached: true },
    // The mirror as a field of its own (bootstrapMirror), whatever the description says; a field left unredacted is redacted here.
    { source: 'mmdebstrap bookworm (important) from somewhere else', mirror: bootstrapMirror([`deb ${credMirror}?token=abc bookworm main`]), sha256: 'c'.repeat(64), cached: false },
    { source: 'mmdebstrap bookworm (important)', mirror: credMirror, sha256: 'c'.repeat(64), cached: true },
  ];
  for (const base of bases) {
    const dependency = baseDependency(base);
    assert.match(dependency.uri, /^(http|https):\/\/<redacted>@127\.0\.0\.1:9\//);
    const statement = JSON.stringify(provenanceStatement({
      name: 'p', version: '1', subjects: [], profile: { path: '/p.yaml', sha256: 'd'.repeat(64) }, inputs: [], base: dependency,
      guestforgeVersion: '0', tools: {}, accel: 'tcg', backend: 'qemu', smoke: false, buildId: 'x', startedOn: 'then', finishedOn: 'now',
    }));
    assert.not.match(statement, /s3cret|alice|token/, statement);
  }
});

test('a failed download names its URL redacted, whatever fetch said', async () => {
  const step = { update() {}, succeed() {}, fail() {} };
  for (const url of ['http://127.0.0.1:9/img.qcow2?token=abc', 'http://alice:s3cret@127.0.0.1:9/img.qcow2?token=abc']) {
    const error = await rejects(download(url, join(tmp, 'dl.qcow2'), step, new AbortController().signal), /^download failed: http:\/\/(<redacted>@)?127\.0\.0\.1:9\/img\.qcow2\?<redacted>: /);
    assert.not.match(`${error.message}\n${error.hint ?? ''}\n${String(error.cause ?? '')}`, /s3cret|alice|token/);
  }
});

test.run();
