/**
 * Composing an OSv image. With capstan on PATH: `capstan package compose`.
 * Without it, natively, the way Capstan composes ZFS images: boot the base
 * with the upload command line (mkfs, cpiod on port 10000), forward a free
 * loopback port to it, wait for "Waiting for connection from host", stream
 * the cpio archive, wait for the guest to power off, then write the app's
 * command line at offset 512.
 */
import { createReadStream } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../../errors.ts';
import { findOnPath, run, shellQuote, start } from '../../exec/run.ts';
import type { Logger } from '../../log.ts';
import type { Accel } from '../../vm/accel.ts';
import { qemuArgs } from '../../vm/qemu-args.ts';
import { SerialTail } from '../../vm/serial.ts';
import { writeCmdline } from './cmdline.ts';
import { freePort } from '../../util/net.ts';

export { freePort } from '../../util/net.ts';

/** What Capstan sets for a new ZFS image: make the filesystem, receive files, turn compression off. */
export const uploadCmdline = '--norandom --nomount --noinit /tools/mkfs.so; /tools/cpiod.so --prefix /zfs/zfs/; /zfs.so set compression=off osv';
export const cpiodPort = 10000;
export const readyLine = 'Waiting for connection from host';

/** Streams a file to a TCP port on loopback and half-closes, as cpiod expects the archive to end. */
export async function sendFile(file: string, port: number, timeoutMs: number): Promise<void> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`upload to port ${port} stalled for ${timeoutMs / 1000}s`)));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  await pipeline(createReadStream(file), socket);
}

/** Waits until `line` shows up in the serial log or the deadline passes. */
export async function waitForSerial(tail: SerialTail, pattern: string, deadlineMs: number, isAlive: () => boolean): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    for (const line of await tail.poll()) if (line.includes(pattern)) return;
    if (!isAlive()) throw new UserError(`the OSv upload VM stopped before printing "${pattern}"`, { hint: tail.tail(20).join('\n') });
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new UserError(`the OSv upload VM timed out waiting for "${pattern}"`, { hint: tail.tail(20).join('\n') });
}

export interface NativeCompose {
  /** Raw disk, a copy of the base, written in place. */
  disk: string;
  archive: string;
  cmdline: string;
  accel: Accel;
  workDir: string;
  serialLog: string;
  timeoutMs: number;
  log: Logger;
  signal: AbortSignal;
}

export async function composeNative(c: NativeCompose): Promise<void> {
  await writeCmdline(c.disk, uploadCmdline);
  const port = await freePort();
  const argv = qemuArgs({
    disk: c.disk, diskFormat: 'raw', memoryMiB: 1024, cpus: 2, accel: c.accel,
    serialLog: c.serialLog, qmpSocket: join(c.workDir, 'osv-qmp.sock'), unsafeCache: false,
    hostForward: { hostPort: port, guestPort: cpiodPort },
  });
  c.log.detail(`OSv upload VM: ${shellQuote(argv)}`);
  const child = start(argv, { cancelSignal: c.signal, timeoutMs: c.timeoutMs });
  let alive = true;
  const exit = child.then((r) => {
    alive = false;
    return r;
  });
  try {
    await waitForSerial(new SerialTail(c.serialLog), readyLine, c.timeoutMs, () => alive);
    await sendFile(c.archive, port, 120_000);
    const r = await exit;
    if (r.timedOut) throw new UserError(`the OSv upload VM timed out after ${c.timeoutMs / 1000}s`);
    if (r.exitCode !== 0) throw new UserError(`the OSv upload VM failed (exit ${r.exitCode})`, { hint: `console: ${c.serialLog}` });
  } finally {
    if (alive) {
      child.kill('SIGTERM');
      await exit;
    }
  }
  await writeCmdline(c.disk, c.cmdline);
}

/** With capstan installed: compose from the package folder, return the image capstan wrote. */
export async function composeWithCapstan(packageDir: string, name: string, fs: 'zfs' | 'rofs', size: string, target: string): Promise<void> {
  await run(['capstan', 'package', 'compose', '--fs', fs, '--size', size, name], { cwd: packageDir, timeoutMs: 60 * 60_000 });
  const composed = join(homedir(), '.capstan', 'repository', name, `${name}.qemu`);
  await copyFile(composed, target);
}

export async function hasCapstan(): Promise<boolean> {
  return findOnPath('capstan') !== undefined;
}
