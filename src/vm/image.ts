/**
 * What qemu-img says of a disk image, one level at a time (`qemu-img info`
 * without --backing-chain opens no backing file), and the backing chain of
 * an image from elsewhere walked with limits: a qcow2 can name any host file
 * as its backing file (verify would then read that host disk) or loop.
 */
import { realpath, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { CommandError, run } from '../exec/run.ts';
import { isUnder } from '../policy/paths.ts';
import { qemuOptValue } from './qemu-args.ts';
import { untrustedPathProblem } from '../util/trusted-path.ts';

export interface ImageInfo {
  format: string;
  virtualSize: number;
  /** The backing file as qemu resolves it (absolute), when there is one. */
  backing?: string;
  /** The backing name as written in the image (a protocol or json: shows here). */
  backingRaw?: string;
  backingFormat?: string;
  /** qcow2's external data file, when it has one. */
  dataFile?: string;
  /** vmdk: how it is made (monolithicSparse, streamOptimized, twoGbMaxExtentFlat…) and the files holding its data. */
  vmdk?: { createType: string; extents: string[] };
}

export async function imageInfo(path: string, options: { timeoutMs?: number } = {}): Promise<ImageInfo> {
  const { stdout } = await run(['qemu-img', 'info', '--output=json', '-U', path], { timeoutMs: options.timeoutMs ?? 30_000 });
  const info = JSON.parse(stdout) as {
    format: string; 'virtual-size': number; 'backing-filename'?: string; 'full-backing-filename'?: string; 'backing-filename-format'?: string;
    'format-specific'?: { type?: string; data?: { 'data-file'?: string; 'create-type'?: string; extents?: { filename?: string }[] } };
  };
  const raw = info['backing-filename'];
  const backing = info['full-backing-filename'] ?? raw;
  const dataFile = info['format-specific']?.data?.['data-file'];
  return {
    format: info.format,
    virtualSize: info['virtual-size'],
    ...(backing ? { backing: resolve(dirname(path), backing) } : {}),
    ...(raw ? { backingRaw: raw } : {}),
    ...(info['backing-filename-format'] ? { backingFormat: info['backing-filename-format'] } : {}),
    ...(dataFile ? { dataFile } : {}),
    ...(info.format === 'vmdk'
      ? { vmdk: { createType: info['format-specific']?.data?.['create-type'] ?? '', extents: (info['format-specific']?.data?.extents ?? []).map((e) => e.filename ?? '') } }
      : {}),
  };
}

export const maxBackingDepth = 8;

/** Pure: qemu reads `name` as a protocol (`nbd:`, `file:`, `json:{…}`) when a ':' comes before any '/'. */
export function isProtocolName(name: string): boolean {
  const colon = name.indexOf(':');
  const slash = name.indexOf('/');
  return colon > 0 && (slash < 0 || colon < slash);
}

/**
 * The image and its backing files, top first. Refused (a usage error naming
 * the file): a backing file outside the image's own folder (or outside the
 * folders and files `within` names, when given) unless `allowBacking`, a
 * protocol (nbd:, http:) instead of a file, a loop, a chain deeper than
 * `maxBackingDepth`. Every qemu-img call has a timeout.
 */
export async function checkedBackingChain(image: string, command: string, options: { allowBacking?: boolean; within?: string[] } = {}): Promise<ImageInfo[]> {
  const folders = options.within
    ? await Promise.all(options.within.map((w) => realpath(w).catch(() => undefined))).then((all) => all.filter((w): w is string => w !== undefined))
    : [await realpath(dirname(resolve(image)))];
  const chain: ImageInfo[] = [];
  const seen = new Set<string>();
  let path = resolve(image);
  for (;;) {
    const real = await realpath(path).catch(() => undefined);
    if (!real) throw new UsageError(`${command}: ${image} names a backing file that does not exist: ${path}`);
    if (seen.has(real)) throw new UsageError(`${command}: ${image} has a backing loop (${real} comes back)`);
    seen.add(real);
    if (chain.length > 0 && !options.allowBacking && !folders.some((f) => isUnder(real, f))) {
      throw new UsageError(`${command}: ${image} is backed by ${real}, outside ${options.within ? folders.join(', ') : 'its own folder'}`, {
        hint: options.within
          ? 'a disk whose record another user could write could read any host file this way'
          : 'an image from elsewhere could read any host file this way; flatten it (qemu-img convert -O qcow2 in out) or pass --allow-backing if you trust it',
      });
    }
    const st = await stat(real);
    if (!st.isFile()) throw new UsageError(`${command}: ${real} in ${image}'s chain is not a regular file`);
    // Checked now, opened by path later (qemu, libguestfs): only if no other user can swap or change it in between.
    // A sticky folder such as /tmp may hold it when the file is root's or ours: others can neither replace nor rename it.
    const mine = await writableByOthers(real, st);
    const untrusted = mine ?? (await untrustedPathProblem(dirname(real), { mustExist: true, stickyLast: true }))
      ?? (chain.length === 0 ? await untrustedPathProblem(dirname(resolve(image)), { mustExist: true, stickyLast: true }) : undefined);
    if (untrusted) {
      throw new UsageError(`${command}: ${image}${real === resolve(image) ? '' : ` (${real})`} can be changed by another user: ${untrusted}`, {
        hint: 'guestforge checks the image, then opens it again by name: copy it into a folder only root or you can write, and name that copy',
      });
    }
    // qemu-img's refusal of a file from elsewhere (a malformed descriptor, a missing extent) is a bad input, said with the file.
    const info = await imageInfo(path).catch((error: unknown) => {
      if (!(error instanceof CommandError) && !(error instanceof SyntaxError)) throw error;
      const said = error instanceof CommandError ? error.result.stderr.trim().split('\n').slice(-1)[0] ?? '' : 'qemu-img info gave no JSON';
      throw new UsageError(`${command}: ${path} cannot be read as a disk image: ${said}`, { hint: 'check the file is the image you meant; qemu-img info shows what qemu makes of it' });
    });
    if (info.dataFile) throw new UsageError(`${command}: ${image} keeps its data in an external file (${info.dataFile})`, { hint: 'an image from elsewhere could name any host file this way; convert it: qemu-img convert -O qcow2 in out' });
    if (info.vmdk) {
      // A vmdk descriptor can name any host file or device as an extent: only the one-file kinds, reading themselves.
      const own = info.vmdk.extents.length > 0 && (await Promise.all(info.vmdk.extents.map((e) => realpath(resolve(dirname(real), e)).catch(() => '')))).every((e) => e === real);
      if (!['monolithicSparse', 'streamOptimized'].includes(info.vmdk.createType) || !own) {
        throw new UsageError(`${command}: ${image} is a ${info.vmdk.createType || 'vmdk'} vmdk whose data is in other files (${info.vmdk.extents.join(', ') || 'none named'})`, {
          hint: 'an image from elsewhere could name any host file or device this way; only single-file vmdk (monolithicSparse, streamOptimized) are read: convert it first (qemu-img convert -O qcow2 in out) if you trust it',
        });
      }
    }
    chain.push(info);
    if (!info.backing) return chain;
    if (info.backingRaw && isProtocolName(info.backingRaw)) throw new UsageError(`${command}: ${image} is backed by ${info.backingRaw}, not a plain file`);
    // qemu opens the name as written, and the kernel follows a link before `..`: a name with `..`
    // could be checked as one file and opened as another. And no link on the way to it, for the same reason.
    const written = info.backingRaw ?? '';
    if (written.split('/').includes('..')) throw new UsageError(`${command}: ${image} names its backing file with "..": ${written}`, { hint: 'rebase it onto a plain path (qemu-img rebase -u -b PATH) or flatten it (qemu-img convert -O qcow2 in out)' });
    const onTheWay = await untrustedPathProblem(dirname(info.backing), { mustExist: true, stickyLast: true });
    if (onTheWay) throw new UsageError(`${command}: ${image}'s backing file ${info.backing} can be changed by another user: ${onTheWay}`, { hint: 'flatten it (qemu-img convert -O qcow2 in out) into a folder only root or you can write' });
    if (chain.length >= maxBackingDepth) throw new UsageError(`${command}: ${image}'s backing chain is deeper than ${maxBackingDepth}`, { hint: 'flatten it: qemu-img convert -O qcow2' });
    path = info.backing;
  }
}

/** Why another user could change this file (its owner, its mode), or undefined. */
async function writableByOthers(path: string, st: { uid: number; gid: number; mode: number }): Promise<string | undefined> {
  const me = process.geteuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== me) return `${path} belongs to uid ${st.uid}, another user`;
  const myGroup = process.getegid?.() ?? 0;
  if ((st.mode & 0o002) !== 0 || ((st.mode & 0o020) !== 0 && st.gid !== 0 && st.gid !== myGroup)) return `${path} can be written by other users (mode ${(st.mode & 0o7777).toString(8)})`;
  return undefined;
}

/**
 * Pure: the qemu-img argv that writes a raw file into `disk` at `offset`, never past
 * `offset + bytes` (qemu's raw driver, layered on the disk's own format, bounds the write:
 * a larger source is an error, not a write into the next partition). Zero runs become
 * zero clusters, so what was there before is gone.
 */
export function writeAtArgs(source: string, disk: { path: string; format: string }, offset: number, bytes: number): string[] {
  const target = `driver=raw,offset=${offset},size=${bytes},file.driver=${disk.format},file.file.driver=file,file.file.filename=${qemuOptValue(resolve(disk.path))}`;
  return ['qemu-img', 'convert', '-n', '-f', 'raw', source, '--target-image-opts', target];
}
