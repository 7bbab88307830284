/**
 * OSv, everything short of a live OSv guest (no OSv image can be downloaded
 * here): the Capstan package read back, the upload archive read back by GNU
 * cpio, the upload path against a loopback listener that pipes into GNU
 * cpio -i, the command line at byte 512 through raw and qcow2, and the seed.
 */
import { rejects } from './helpers/rejects.ts';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { run } from '../src/exec/run.ts';
import { cmdlineOffset, readCmdline, writeCmdline } from '../src/os/osv/cmdline.ts';
import { freePort, readyLine, sendFile, waitForSerial } from '../src/os/osv/compose.ts';
import { archiveNames, writeCpioArchive } from '../src/os/osv/cpio.ts';
import { bootCommand, writePackage } from '../src/os/osv/package.ts';
import { loadProfileOrThrow } from '../src/loader/index.ts';
import { SerialTail } from '../src/vm/serial.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const tmp = await mkdtemp(join(tmpdir(), 'gf-osv-'));
const hello = (await loadProfileOrThrow(join(root, 'profiles', 'osv-hello.yaml'))).profile;

/** A tree with what an app folder holds: modes, a symlink, an empty folder, nesting. */
async function appTree(dir: string): Promise<void> {
  await mkdir(join(dir, 'lib', 'deep'), { recursive: true });
  await mkdir(join(dir, 'empty'), { recursive: true });
  await writeFile(join(dir, 'hello.so'), 'ELF stand-in\n');
  await chmod(join(dir, 'hello.so'), 0o755);
  await writeFile(join(dir, 'lib', 'deep', 'data.bin'), Buffer.alloc(70_000, 7));
  await writeFile(join(dir, 'etc.conf'), 'key=value\n');
  await chmod(join(dir, 'etc.conf'), 0o600);
  await symlink('hello.so', join(dir, 'hello-link.so'));
}

async function sameTree(a: string, b: string): Promise<void> {
  const diff = await run(['diff', '-r', '--no-dereference', a, b], { allowFailure: true });
  assert.is(diff.exitCode, 0, diff.stdout + diff.stderr);
  for (const name of await archiveNames(a)) {
    const [sa, sb] = [await stat(join(a, name)).catch(() => undefined), await stat(join(b, name)).catch(() => undefined)];
    assert.is(sb?.mode, sa?.mode, `mode of ${name}`);
  }
}

const pkg = suite('OSv Capstan package');

pkg('osv-hello becomes meta/package.yaml, meta/run.yaml, a Capstanfile and its files', async () => {
  const out = join(tmp, 'pkg');
  const dir = await writePackage(hello, out);
  const meta = parse(await readFile(join(dir, 'meta', 'package.yaml'), 'utf8'));
  assert.equal(meta, { name: 'osv-hello', title: 'osv-hello', author: 'guestforge', version: '0.1.0', require: ['osv.node-js'] });
  const runYaml = parse(await readFile(join(dir, 'meta', 'run.yaml'), 'utf8'));
  assert.equal(runYaml, { runtime: 'node', config_set: { default: { main: '/hello.js' } }, config_set_default: 'default' });
  const capstanfile = parse(await readFile(join(dir, 'Capstanfile'), 'utf8'));
  assert.equal(capstanfile, { base: 'cloudius/osv-node', cmdline: '/node /hello.js', files: { '/hello.js': './hello.js' } });
  assert.is(await readFile(join(dir, 'hello.js'), 'utf8'), await readFile(join(root, 'profiles', 'apps', 'osv-hello', 'hello.js'), 'utf8'));
});

pkg('native runtime with env: bootcmd in run.yaml, --env= in the command line', () => {
  const native = { ...hello, os: { ...hello.os, runtime: 'native', cmdline: '/tools/hello.so -v', env: { PORT: '8000' } } } as typeof hello;
  assert.is(bootCommand(native), '--env=PORT=8000 /tools/hello.so -v');
});

pkg('build --package-only writes the package and starts no VM, needs no base image', async () => {
  const out = join(tmp, 'pkg-only');
  const r = await execa('node', [cli, 'build', join(root, 'profiles', 'osv-hello.yaml'), '-o', out, '--package-only'], {
    reject: false, all: true, env: { XDG_CACHE_HOME: join(tmp, 'cache'), CI: '1' },
  });
  assert.is(r.exitCode, 0, r.all);
  assert.ok(existsSync(join(out, 'osv-hello', 'meta', 'run.yaml')));
  assert.not.ok(existsSync(join(out, 'osv-hello.qcow2')));
  assert.match(r.all, /Capstan package: /);
});

const cpio = suite('OSv upload archive (read back by GNU cpio)');

cpio('names, modes, symlinks and empty folders survive; the archive ends with TRAILER!!!', async () => {
  const src = join(tmp, 'tree');
  await appTree(src);
  const archive = join(tmp, 'upload.cpio');
  const names = await writeCpioArchive(src, archive);
  const listed = (await run(['cpio', '-t', '--quiet', `--file=${archive}`])).stdout.trim().split('\n');
  assert.equal(listed, names);
  assert.ok(names.includes('empty') && names.includes('hello-link.so') && names.includes('lib/deep/data.bin'));
  const bytes = await readFile(archive);
  assert.ok(bytes.includes(Buffer.from('070701')), 'newc magic');
  assert.ok(bytes.includes(Buffer.from('TRAILER!!!')));
  const back = join(tmp, 'back');
  await mkdir(back);
  await run(['cpio', '-i', '-d', '--quiet', '--preserve-modification-time', `--file=${archive}`], { cwd: back });
  await sameTree(src, back);
});

cpio('a file over 4 GiB - 1 is refused with a clear error before anything is written', async () => {
  const src = join(tmp, 'big');
  await mkdir(src);
  await run(['truncate', '-s', String(2 ** 32), join(src, 'huge.img')]);
  const archive = join(tmp, 'big.cpio');
  await rejects(writeCpioArchive(src, archive), /huge\.img is 4294967296 bytes: .* at most 4 GiB - 1/);
  assert.not.ok(existsSync(archive));
});

cpio('upload path: wait for the serial line, stream to a loopback listener piping into cpio -i', async () => {
  const src = join(tmp, 'upsrc');
  await appTree(src);
  const archive = join(tmp, 'up.cpio');
  await writeCpioArchive(src, archive);
  const dest = join(tmp, 'updest');
  await mkdir(dest);
  const port = await freePort();
  // The stand-in for OSv's cpiod: accept one connection and hand the stream to GNU cpio.
  let extracted!: Promise<number | null>;
  const server = createServer((socket) => {
    const child = spawn('cpio', ['-i', '-d', '--quiet', '--preserve-modification-time'], { cwd: dest, stdio: ['pipe', 'ignore', 'inherit'] });
    socket.pipe(child.stdin);
    extracted = new Promise((r) => child.on('close', r));
    server.close();
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const serial = join(tmp, 'serial.log');
  await writeFile(serial, 'OSv v0.57.0\nBooted up in 300 ms\n');
  setTimeout(() => void appendFile(serial, `${readyLine}...\n`), 700);
  await waitForSerial(new SerialTail(serial), readyLine, 10_000, () => true);
  await sendFile(archive, port, 10_000);
  assert.is(await extracted, 0);
  await sameTree(src, dest);
});

cpio('waiting for the serial line gives up with "timed out" and the console tail', async () => {
  const serial = join(tmp, 'silent.log');
  await writeFile(serial, 'OSv v0.57.0\n');
  await rejects(waitForSerial(new SerialTail(serial), readyLine, 1500, () => true), /timed out waiting for "Waiting for connection from host"/);
});

const cmd = suite('OSv command line at byte 512');

cmd('written to a raw image, read back from raw and from a qcow2 conversion; verify recognises it', async () => {
  const raw = join(tmp, 'osv.raw');
  await run(['truncate', '-s', '4M', raw]);
  const boot = Buffer.alloc(512);
  boot[510] = 0x55;
  boot[511] = 0xaa;
  await writeFile(raw, Buffer.concat([boot, Buffer.alloc(4 * 1024 * 1024 - 512)]));
  await writeCmdline(raw, '/node /hello.js');
  const head = (await readFile(raw)).subarray(cmdlineOffset, cmdlineOffset + 17);
  assert.equal([...head], [...Buffer.from('/node /hello.js\0\0')]);
  assert.is(await readCmdline(raw, 'raw'), '/node /hello.js');
  const qcow2 = join(tmp, 'osv.qcow2');
  await run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
  assert.is(await readCmdline(qcow2, 'qcow2'), '/node /hello.js');
  const r = await execa('node', [cli, 'verify', qcow2, '--json'], { reject: false, env: { XDG_CACHE_HOME: join(tmp, 'cache') } });
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).cmdline, '/node /hello.js');
  await writeCmdline(raw, '/short');
  assert.is(await readCmdline(raw, 'raw'), '/short', 'a shorter line replaces a longer one (NUL-terminated)');
});

cmd('a command line too long for the image is refused', async () => {
  const raw = join(tmp, 'long.raw');
  await run(['truncate', '-s', '1M', raw]);
  await rejects(writeCmdline(raw, `/x ${'a'.repeat(2000)}`), /at most 1023 fit/);
});

cmd('guestforge seed for an OSv profile: an ISO holding user-data only', async () => {
  const iso = join(tmp, 'seed.iso');
  const r = await execa('node', [cli, 'seed', join(root, 'profiles', 'osv-hello.yaml'), '-o', iso], { reject: false, all: true });
  assert.is(r.exitCode, 0, r.all);
  const listing = await run(['xorriso', '-indev', iso, '-find', '/', '-type', 'f'], { allowFailure: true });
  const files = listing.stdout.split('\n').filter((l) => l.startsWith("'/")).map((l) => l.replaceAll("'", ''));
  assert.equal(files, ['/user-data']);
  const info = await run(['xorriso', '-indev', iso, '-pvd_info'], { allowFailure: true });
  assert.match(`${info.stdout}${info.stderr}`, /Volume Id\s*:\s*cidata/);
});

pkg.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

cpio.run();
cmd.run();
pkg.run();
