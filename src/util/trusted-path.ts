/**
 * Folders guestforge writes to or removes in as root (-o, logs, --log-dir,
 * the publish share) must be ours all the way down: if another user could
 * swap a component for a link, `rm -rf <out>/logs/<name>` would remove
 * whatever that link points at. The rule is the one OpenSSH and sudo apply:
 * from / down, no component is a symbolic link, each belongs to root or to
 * us, and none can be written by others, except a sticky folder such as
 * /tmp above the last one (others cannot rename or remove what is ours there).
 */
import { lstat, mkdir, realpath } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { UsageError } from '../errors.ts';

/** Why `path` is not a folder we may trust, or undefined; components that do not exist yet are ours to make. */
/** `stickyLast`: the last folder may be a sticky one others write (/tmp) — for a file of ours in it, which others cannot replace. */
export async function untrustedPathProblem(path: string, options: { mustExist?: boolean; stickyLast?: boolean } = {}): Promise<string | undefined> {
  const parts = resolve(path).split(sep).filter(Boolean);
  const me = process.geteuid?.() ?? 0;
  const myGroup = process.getegid?.() ?? 0;
  let current: string = sep;
  for (let i = 0; i <= parts.length; i += 1) {
    if (i > 0) current = join(current, parts[i - 1]!);
    const st = await lstat(current).catch(() => undefined);
    if (!st) return options.mustExist ? `${current} does not exist` : undefined;
    if (st.isSymbolicLink()) return `${current} is a symbolic link (give the real path)`;
    if (!st.isDirectory()) return `${current} is not a folder`;
    if (st.uid !== 0 && st.uid !== me) return `${current} belongs to uid ${st.uid}, another user`;
    const last = i === parts.length;
    // Group write is others' write unless the group is root's or our own (a user's private group, umask 002).
    const othersWrite = (st.mode & 0o002) !== 0 || ((st.mode & 0o020) !== 0 && st.gid !== 0 && st.gid !== myGroup);
    if (othersWrite && ((last && !options.stickyLast) || (st.mode & 0o1000) === 0)) return `${current} can be written by other users (mode ${(st.mode & 0o7777).toString(8)})`;
  }
  return undefined;
}

/**
 * Why a file guestforge reads and acts on as root (a profile named by a kept
 * build's record) is not one we may trust, or undefined. Links are followed
 * (whoever made the link, the file it reaches is what is read), then the same
 * rule as for folders: the real file and every folder above it ours or root's,
 * none writable by others.
 */
export async function untrustedFileProblem(path: string): Promise<string | undefined> {
  const real = await realpath(path).catch(() => undefined);
  if (!real) return `${path} does not exist`;
  const st = await lstat(real);
  if (!st.isFile()) return `${real} is not a regular file`;
  const me = process.geteuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== me) return `${real} belongs to uid ${st.uid}, another user`;
  const othersWrite = (st.mode & 0o002) !== 0 || ((st.mode & 0o020) !== 0 && st.gid !== 0 && st.gid !== (process.getegid?.() ?? 0));
  if (othersWrite) return `${real} can be written by other users (mode ${(st.mode & 0o777).toString(8)})`;
  return untrustedPathProblem(dirname(real), { mustExist: true });
}

/** The folder, made if missing (mode for what is made), after checking it can be trusted; `what` names it in the error (-o out). */
export async function ensureTrustedDir(path: string, what: string, mode = 0o755): Promise<string> {
  // The path as checked is the path made: `a/link/../b` is made as a/b, not through the link.
  const absolute = resolve(path);
  const hint = 'guestforge writes and removes there as this user: use a folder that only root or you can change (as root, one of root\'s, not a checkout another user owns)';
  const problem = await untrustedPathProblem(absolute);
  if (problem) throw new UsageError(`${what}: ${problem}`, { hint });
  await mkdir(absolute, { recursive: true, mode });
  // Made just now: look again, every part must be there and ours (another user may have made one first).
  const after = await untrustedPathProblem(absolute, { mustExist: true });
  if (after) throw new UsageError(`${what}: ${after}`, { hint });
  return absolute;
}
