/**
 * Reading a hostile image's files within bounds. A 5 MB image once held an
 * rpm database that verify copied out as 2 GiB into /tmp; 3,000 small config
 * files took it 23 minutes (two guestfish clients per file); a loop of
 * symbolic links ended it with exit 1. So files are probed first (type and
 * size, all in one guestfish round trip), read only within their limits (all
 * in one more), a glob naming more files than verify reads is read not at all,
 * and whatever was left unread is said in the facts, where the
 * verify.complete rule fails on it.
 */
import { mkdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { GuestSession } from '../guestfs/session.ts';
import type { Unread } from '../model/facts.ts';

const MiB = 1024 * 1024;

export const readLimits = {
  /** Files one pattern (cloud.cfg.d/*.cfg, /boot/vmlinuz-*, …) may match, and entries of the rpm database's folder. */
  globbedFiles: 256,
  /** One configuration file. */
  fileBytes: 1 * MiB,
  /** dpkg's status file (a few MiB on a large system). */
  statusBytes: 64 * MiB,
  /** Every text read out of one image. */
  totalBytes: 96 * MiB,
  /** The rpm database's files, copied to the host for rpm to read. */
  rpmDbBytes: 256 * MiB,
} as const;

/** libguestfs could not stat it: the path runs through a loop of symbolic links (ELOOP), or something as odd. */
export const unreadableWhy = 'libguestfs cannot stat it (a loop of symbolic links on the way?)';

const mib = (bytes: number) => `${(bytes / MiB).toFixed(bytes < MiB ? 2 : 0)} MiB`;

/** What guestfish's `is-file PATH followsymlinks:true` and `filesize PATH` answered. */
export type Probe = { kind: 'file'; bytes: number } | { kind: 'absent' } | { kind: 'unreadable' };

/** Pure: the two answers as a probe; an empty answer is a call that failed. */
export function probeOf(isFile: string, size: string): Probe {
  const answer = isFile.trim();
  // false: missing, a folder, a device, a dangling link; what verify never read before either.
  if (answer === 'false') return { kind: 'absent' };
  if (answer !== 'true') return { kind: 'unreadable' };
  const bytes = Number(size.trim());
  return size.trim() !== '' && Number.isSafeInteger(bytes) && bytes >= 0 ? { kind: 'file', bytes } : { kind: 'unreadable' };
}

/** Pure: which probed files to read, in order, each within its limit and all within `totalBytes`; the others with why. */
export function planReads(files: readonly { path: string; probe: Probe; limit: number }[], totalBytes: number = readLimits.totalBytes): { read: string[]; unread: Unread[] } {
  const read: string[] = [];
  const unread: Unread[] = [];
  let total = 0;
  for (const { path, probe, limit } of files) {
    if (probe.kind === 'absent') continue;
    if (probe.kind === 'unreadable') unread.push({ path, why: unreadableWhy });
    else if (probe.bytes > limit) unread.push({ path, why: `${mib(probe.bytes)}, more than the ${mib(limit)} verify reads of such a file` });
    else if (total + probe.bytes > totalBytes) unread.push({ path, why: `past the ${mib(totalBytes)} verify reads of one image in all` });
    else {
      read.push(path);
      total += probe.bytes;
    }
  }
  return { read, unread };
}

/** Pure: a pattern's matches, sorted, or none and why when there are more than `limit`. */
export function capGlob(pattern: string, matches: readonly string[], limit: number = readLimits.globbedFiles): { paths: string[]; unread?: Unread } {
  if (matches.length > limit) return { paths: [], unread: { path: pattern, why: `${matches.length} matches, more than the ${limit} verify reads: none judged` } };
  return { paths: [...matches].sort() };
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

/** Each pattern's matches (one round trip); a pattern matching too many gives none, said in `unread`. */
export async function globAll(session: GuestSession, patterns: readonly string[], unread: Unread[]): Promise<string[][]> {
  const answers = await session.batch(patterns.map((p) => ['glob-expand', p]));
  return answers.map((answer, i) => {
    const capped = capGlob(patterns[i]!, lines(answer));
    if (capped.unread) unread.push(capped.unread);
    return capped.paths;
  });
}

/**
 * The text of each file that is there, in two round trips (probe, then read);
 * what is there but was not read goes to `unread`. Links are followed, as the
 * guest's own readers follow them.
 */
export async function readTexts(session: GuestSession, files: readonly { path: string; limit: number }[], unread: Unread[]): Promise<Map<string, string>> {
  const probes = await session.batch(files.flatMap((f) => [['is-file', f.path, 'followsymlinks:true'], ['filesize', f.path]]));
  const probed = files.map((f, i) => ({ ...f, probe: probeOf(probes[2 * i]!, probes[2 * i + 1]!) }));
  const planned = planReads(probed);
  unread.push(...planned.unread);
  const empty = new Set(probed.filter((f) => f.probe.kind === 'file' && f.probe.bytes === 0).map((f) => f.path));
  const toCat = planned.read.filter((path) => !empty.has(path));
  const texts = new Map((await session.batch(toCat.map((path) => ['cat', path]))).map((text, i) => [toCat[i]!, text]));
  const out = new Map<string, string>();
  for (const path of planned.read) {
    if (empty.has(path)) {
      out.set(path, '');
      continue;
    }
    const text = texts.get(path)!;
    // guestfish ends cat's text with a newline of its own; nothing at all is a call that failed.
    if (text === '') unread.push({ path, why: unreadableWhy });
    else out.set(path, text.endsWith('\n') ? text.slice(0, -1) : text);
  }
  return out;
}

/**
 * The rpm database folder's regular files (no links, nothing below), copied
 * into `local`/rpm for the host's rpm, only when they number at most
 * `globbedFiles` and weigh at most `rpmDbBytes` together (sizes asked first).
 * The folder to give rpm, or undefined with why in `unread`.
 */
export async function copyOutRpmDb(session: GuestSession, dbDir: string, names: readonly string[], local: string, unread: Unread[]): Promise<string | undefined> {
  if (names.length > readLimits.globbedFiles) {
    unread.push({ path: dbDir, why: `${names.length} entries, more than the ${readLimits.globbedFiles} verify looks at` });
    return undefined;
  }
  const paths = names.map((n) => posix.join(dbDir, n));
  const probes = await session.batch(paths.flatMap((p) => [['is-file', p], ['filesize', p]]));
  const files = paths.map((path, i) => ({ path, probe: probeOf(probes[2 * i]!, probes[2 * i + 1]!) })).filter((f) => f.probe.kind === 'file');
  const bytes = files.reduce((sum, f) => sum + (f.probe.kind === 'file' ? f.probe.bytes : 0), 0);
  if (bytes > readLimits.rpmDbBytes) {
    unread.push({ path: dbDir, why: `${mib(bytes)} of files, more than the ${mib(readLimits.rpmDbBytes)} verify copies out` });
    return undefined;
  }
  const into = join(local, 'rpm');
  await mkdir(into, { mode: 0o700 });
  await session.batch(files.map((f) => ['copy-out', f.path, into]));
  return into;
}
