import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream, statSync } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function sha256Text(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function nonce(bytes = 6): string {
  return randomBytes(bytes).toString('hex');
}

/** A temp name next to `path`, so the final rename stays on one filesystem. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${nonce(3)}`);
}

/** Write through a temp name and rename: readers never see a partial file. */
export async function writeFileAtomic(path: string, data: string | Buffer, mode?: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = tempPathFor(path);
  try {
    await writeFile(temp, data, mode === undefined ? {} : { mode });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * A file for its owner's eyes only (0600) in a folder no one else may enter: a
 * secret on its way to a program. Made anew with O_EXCL, so a link left in its
 * place is not followed.
 */
export async function writeOwnerOnly(path: string, data: string): Promise<void> {
  const folder = (await stat(dirname(path))).mode & 0o777;
  if (folder & 0o077) throw new Error(`writeOwnerOnly: ${dirname(path)} has mode ${folder.toString(8)}, not owner-only`);
  await rm(path, { force: true });
  await writeFile(path, data, { mode: 0o600, flag: 'wx' });
}

/** One hash over a file or a folder tree: names, modes, symlink targets and contents. */
export async function hashTree(path: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (p: string, rel: string): Promise<void> => {
    const st = await lstat(p);
    hash.update(`${rel}\0${st.mode.toString(8)}\0`);
    if (st.isDirectory()) {
      for (const name of (await readdir(p)).sort()) await walk(join(p, name), `${rel}/${name}`);
    } else if (st.isSymbolicLink()) {
      hash.update(await readlink(p));
    } else if (st.isFile()) {
      hash.update(await sha256File(p));
    }
    hash.update('\0');
  };
  await walk(path, '.');
  return hash.digest('hex');
}

/**
 * Read a file someone else controls (a guest wrote it on an export): no
 * symlink followed, only a regular file, at most `maxBytes` (the rest is cut
 * and said so). Undefined when missing or not a regular file.
 */
export async function readUntrusted(path: string, maxBytes = 1024 * 1024, options: { followLinks?: boolean } = {}): Promise<string | undefined> {
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (options.followLinks ? 0 : constants.O_NOFOLLOW);
  const handle = await open(path, flags).catch(() => undefined);
  if (!handle) return undefined;
  try {
    const st = await handle.stat();
    if (!st.isFile()) return undefined;
    const buffer = Buffer.alloc(Math.min(st.size, maxBytes));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const text = buffer.subarray(0, bytesRead).toString('utf8');
    return st.size > maxBytes ? `${text}\n[… cut at ${maxBytes} of ${st.size} bytes]` : text;
  } finally {
    await handle.close();
  }
}

/** A file's size in bytes, 0 when there is none. */
export function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** What `file` gained past byte `from`: its last 4 KiB at most (a log may be long, the reason is at its end). */
export async function tailFrom(file: string, from: number): Promise<string> {
  const cap = 4096;
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(file, 'r');
    const size = (await handle.stat()).size;
    const start = Math.max(from, size - cap);
    if (size <= start) return '';
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    return buffer.toString('utf8');
  } catch {
    return '';
  } finally {
    await handle?.close();
  }
}
