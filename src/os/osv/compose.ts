/**
 * Composing an OSv image. With capstan on PATH: `capstan package compose`.
 * Without it, natively, the way current Capstan composes ZFS images: the
 * base's loader plus a fresh ZFS partition (disk.ts), OSv's ZFS builder
 * kernel booted on it (mkfs, cpiod on port 10000, forwarded from a free
 * loopback port), the cpio archive streamed once it prints "Waiting for
 * connection from host", then the app's command line at offset 512.
 */
import { createReadStream } from 'node:fs';
import { copyFile, open } from 'node:fs/promises';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../../errors.ts';
import { findOnPath, run, shellQuote, start } from '../../exec/run.ts';
import type { Logger } from '../../log.ts';
import type { Accel } from '../../vm/accel.ts';
import { qemuArgs } from '../../vm/qemu-args.ts';
import { freshConsoleLog, SerialTail } from '../../vm/serial.ts';
import { writeCmdline } from './cmdline.ts';
import { loaderBytes, mbrEntry2, osvLayout, zfsPartitionEntry, type OsvLayout } from './disk.ts';
import { freePort } from '../../util/net.ts';
import { convertPlain } from '../../vm/qemu-img.ts';

export { freePort } from '../../util/net.ts';

/**
 * The ZFS builder kernel's command line, as current Capstan boots it: make the pool on the
 * disk's ZFS partition, receive the files over port 10000, turn compression off. A release
 * loader has none of these tools in its boot filesystem.
 */
export const builderCmdline = '--console=serial --norandom --nomount --noinit --preload-zfs-library /tools/mkfs.so; /tools/cpiod.so --prefix /zfs/zfs/; /zfs.so set compression=off osv';
export const cpiodPort = 10000;
export const readyLine = 'Waiting for connection from host';
export const doneLine = 'cpiod finished';
/** What OSv prints when it will hang or stop instead of finishing (the builder, or an app). */
export const osvFailureLines = ['Assertion failed', 'Failed to load object', 'Aborted', 'page fault outside application'];

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

/** Waits until `pattern` shows up in the serial log; a failure line, the VM's end or the deadline stop the wait. */
export async function waitForSerial(tail: SerialTail, pattern: string, deadlineMs: number, isAlive: () => boolean, failures: string[] = []): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    for (const line of await tail.poll()) {
      if (line.includes(pattern)) return;
      const failed = failures.find((f) => line.includes(f));
      if (failed) throw new UserError(`the OSv builder VM failed: ${line.trim()}`, { hint: tail.tail(20).join('\n') });
    }
    if (!isAlive()) throw new UserError(`the OSv builder VM stopped before printing "${pattern}"`, { hint: tail.tail(20).join('\n') });
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new UserError(`the OSv builder VM timed out waiting for "${pattern}"`, { hint: tail.tail(20).join('\n') });
}

export interface NativeCompose {
  base: { path: string; format: 'qcow2' | 'raw' };
  /** The ZFS builder kernel (osv-zfs-builder.elf). */
  builder: string;
  /** The raw disk to write. */
  disk: string;
  diskBytes: number;
  archive: string;
  cmdline: string;
  accel: Accel;
  workDir: string;
  serialLog: string;
  timeoutMs: number;
  log: Logger;
  signal: AbortSignal;
}

/**
 * Composes natively: the base's loader, a fresh ZFS partition, the builder kernel booted on
 * it receiving the cpio archive, then the app's command line at byte 512. The base's own ZFS
 * files are not carried over (nothing on the host reads ZFS): the apps bring what they need.
 */
export async function composeNative(c: NativeCompose): Promise<OsvLayout> {
  await convertPlain(c.base, 'raw', c.disk);
  const handle = await open(c.disk, 'r+');
  let layout: OsvLayout;
  try {
    const mbr = Buffer.alloc(512);
    await handle.read(mbr, 0, 512, 0);
    const loader = loaderBytes(mbr, (await handle.stat()).size);
    if (loader === undefined) throw new UserError(`the base image ${c.base.path} has no boot sector: it is no OSv image`, { hint: 'base.image is an OSv loader (osv-loader.qemu) or an OSv image built with ZFS' });
    layout = osvLayout(loader, c.diskBytes);
    await handle.truncate(layout.loaderBytes);
    await handle.truncate(layout.diskBytes);
    const table = Buffer.alloc(64);
    zfsPartitionEntry(layout.partitionStart / 512, layout.partitionBytes / 512).copy(table, mbrEntry2 - 0x1be);
    await handle.write(table, 0, table.length, 0x1be);
  } finally {
    await handle.close();
  }
  c.log.detail(`OSv disk: loader ${layout.loaderBytes} bytes, ZFS partition at ${layout.partitionStart}, ${layout.partitionBytes} bytes`);

  const port = await freePort();
  const argv = qemuArgs({
    disk: c.disk, diskFormat: 'raw', memoryMiB: 1024, cpus: 1, accel: c.accel,
    serialLog: c.serialLog, qmpSocket: join(c.workDir, 'osv-qmp.sock'), unsafeCache: false,
    hostForward: { hostPort: port, guestPort: cpiodPort },
    // It needs nothing from the network but the upload it is sent.
    isolated: true,
    kernel: { path: c.builder, append: builderCmdline },
  });
  await freshConsoleLog(c.serialLog);
  c.log.detail(`OSv builder VM: ${shellQuote(argv)}`);
  const child = start(argv, { cancelSignal: c.signal, timeoutMs: c.timeoutMs });
  let alive = true;
  const exit = child.then((r) => {
    alive = false;
    return r;
  });
  try {
    const tail = new SerialTail(c.serialLog);
    // OSv prints its banner within seconds; a file that is no OSv kernel may hang silently instead.
    await waitForSerial(tail, 'OSv v', Math.min(c.timeoutMs, 60_000), () => alive && !c.signal.aborted, osvFailureLines).catch(async (error: unknown) => {
      if (c.signal.aborted) throw c.signal.reason;
      // qemu itself may have failed (bad arguments, the port taken): its own words first.
      const stderr = alive ? '' : String((await exit).stderr ?? '').trim();
      if (stderr) throw new UserError(`the OSv builder VM failed to start: ${stderr.split('\n').slice(-2).join(' | ')}`, { hint: `command: ${shellQuote(argv)}` });
      throw new UserError(`the OSv builder VM printed no OSv banner: is ${c.builder} OSv's ZFS builder kernel (osv-zfs-builder.elf)?`, { hint: (error as UserError).hint ?? (error as Error).message });
    });
    await waitForSerial(tail, readyLine, c.timeoutMs, () => alive, osvFailureLines);
    await sendFile(c.archive, port, 120_000);
    await waitForSerial(tail, doneLine, 5 * 60_000, () => alive, osvFailureLines);
    // It sets compression off and powers off by itself.
    // (The timer is cancelled once the VM exits: a pending one would keep guestforge alive for 2 minutes.)
    const cancel = new AbortController();
    const r = await Promise.race([exit, sleep(120_000, undefined, { signal: cancel.signal }).catch(() => undefined)]);
    cancel.abort();
    if (!r) throw new UserError('the OSv builder VM received the files but did not power off within 2 minutes', { hint: `console: ${c.serialLog}` });
    if (r.timedOut) throw new UserError(`the OSv builder VM timed out after ${c.timeoutMs / 1000}s`);
    if (r.exitCode !== 0) throw new UserError(`the OSv builder VM failed (exit ${r.exitCode})`, { hint: `console: ${c.serialLog}` });
  } finally {
    if (alive) {
      child.kill('SIGTERM');
      await exit.catch(() => undefined);
    }
  }
  await writeCmdline(c.disk, c.cmdline);
  return layout;
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
