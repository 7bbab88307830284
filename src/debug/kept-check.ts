/**
 * kept.json is read back by commands that may run as root (resume, shell,
 * discard) from a folder someone else might have written a record into (a
 * cache a team shares by group, a work folder swapped for theirs). Nothing in
 * it is taken as written: the record must be a file of ours that nobody else
 * can write; each disk it names must be a regular file of ours inside the
 * build's own folder, by real path, with no link on the way; its resume point
 * may not come after verify; and what resume writes to or signs with is not
 * in it at all (resume takes -o, --sign-key and the backend from its own
 * command line, as build does). A disk's backing chain costs a qemu-img call
 * per file, so the commands that open a disk check it (checkedKeptDisk).
 */
import type { Stats } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import { isAbsolute, join, normalize, relative, sep } from 'node:path';
import { UserError } from '../errors.ts';
import { stageNames } from '../model/stage.ts';
import { isUnder } from '../policy/paths.ts';
import type { DiskRef } from '../model/disk.ts';
import { cacheDir } from '../util/paths.ts';
import { checkedBackingChain } from '../vm/image.ts';

/** A record larger than this is not one guestforge wrote (it is a few KiB). */
export const maxRecordBytes = 1024 * 1024;

const isString = (v: unknown): v is string => typeof v === 'string';
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function diskShapeOk(d: unknown): boolean {
  return d === undefined || (isObject(d) && isString(d.path) && (d.format === 'qcow2' || d.format === 'raw'));
}

function stateShapeOk(s: unknown): boolean {
  if (!isObject(s) || !Array.isArray(s.warnings) || !s.warnings.every(isString) || !Array.isArray(s.timings)) return false;
  if (!s.timings.every((t) => isObject(t) && (stageNames as readonly unknown[]).includes(t.stage) && typeof t.ms === 'number' && (t.note === undefined || isString(t.note)))) return false;
  const b = s.base;
  return b === undefined || (isObject(b) && isString(b.source) && typeof b.cached === 'boolean' && (b.sha256 === undefined || (isString(b.sha256) && /^[0-9a-f]{64}$/.test(b.sha256))));
}

/**
 * Pure: why a parsed kept.json cannot be a record guestforge wrote for the
 * build folder named `id`, or undefined. The folder's name is `<profile>-<12 hex>`,
 * and resume makes its work folder from the profile's name and that nonce: a
 * record naming another profile would send it to another folder.
 */
export function recordProblem(k: unknown, id: string): string | undefined {
  if (!isObject(k)) return 'kept.json holds no record';
  const plan = k.plan;
  if (!Array.isArray(plan) || plan.length === 0 || !plan.every((s) => (stageNames as readonly unknown[]).includes(s))) return 'its plan is not a list of stages';
  const at = k.resumeIndex;
  if (typeof at !== 'number' || !Number.isInteger(at) || at < 0 || at >= plan.length) return 'its plan or resume point is not valid';
  // A build kept after verify resumes at verify (keepBuild): verify judges the disk as it is now.
  const verifyAt = plan.indexOf('verify');
  if (verifyAt >= 0 && at > verifyAt) return `its resume point (${String(plan[at])}) comes after verify, which a resume never skips`;
  if (!isString(k.profileName) || !id.startsWith(`${k.profileName}-`) || !/^[0-9a-f]{12}$/.test(id.slice(k.profileName.length + 1))) return `its profile name does not match its folder's (${id})`;
  if (!(stageNames as readonly unknown[]).includes(k.stage) || (k.reason !== 'failed' && k.reason !== 'break')) return 'its stage or reason is not valid';
  if (!Array.isArray(k.profileFiles) || !isString(k.profileFiles[0]) || !isAbsolute(k.profileFiles[0]) || !isString(k.since) || Number.isNaN(Date.parse(k.since))) return 'its profile files or date are not valid';
  if (!isObject(k.options) || (k.options.accel !== 'kvm' && k.options.accel !== 'tcg')) return 'its accelerator is not kvm or tcg';
  if (k.vm !== undefined && !(isObject(k.vm) && Number.isInteger(k.vm.pid) && (k.vm.pid as number) > 1)) return 'its VM pid is not valid';
  if (!diskShapeOk(k.disk) || !diskShapeOk(k.resumeDisk)) return 'its disks are not a path and a format (qcow2 or raw)';
  if (!isObject(k.inputs) || !stateShapeOk(k.state)) return 'its stage inputs or carried state are not valid';
  if ((k.error !== undefined && !isString(k.error)) || (k.password !== undefined && !isString(k.password))) return 'its error or password is not text';
  return undefined;
}

/** Why the folder or its kept.json are not ours alone (`record`: kept.json's lstat), or undefined. */
export async function keptFileProblem(dir: string, record: Stats): Promise<string | undefined> {
  const me = process.geteuid?.() ?? 0;
  const folder = await lstat(dir);
  if (folder.isSymbolicLink() || !folder.isDirectory()) return `${dir} is not a folder (a link?)`;
  if (folder.uid !== me) return `${dir} belongs to uid ${folder.uid}, not to us`;
  if (record.isSymbolicLink() || !record.isFile()) return 'kept.json is not a regular file (a link?)';
  if (record.uid !== me) return `kept.json belongs to uid ${record.uid}, not to us`;
  if ((record.mode & 0o022) !== 0) return `kept.json can be written by others (mode ${(record.mode & 0o777).toString(8)})`;
  if (record.size > maxRecordBytes) return `kept.json is ${record.size} bytes, not a record guestforge wrote`;
  return undefined;
}

/**
 * Why a disk the record names may not be opened, or undefined: it must be
 * written as a plain path inside `dir`, no part of it below `dir` a link, and
 * be a regular file of ours with one name (a hard link could be any file of
 * its owner's) whose real path is inside the folder's. A disk that is gone is
 * no problem for the record (discard still works); `mustExist` for the
 * commands that open it.
 */
export async function diskFileProblem(path: string, dir: string, options: { mustExist?: boolean } = {}): Promise<string | undefined> {
  if (!isAbsolute(path) || normalize(path) !== path || path === dir || !isUnder(path, dir)) return `${path} is not a path inside ${dir}`;
  let current = dir;
  for (const part of relative(dir, path).split(sep)) {
    current = join(current, part);
    const st = await lstat(current).catch(() => undefined);
    if (!st) return options.mustExist ? `${current} does not exist` : undefined;
    if (st.isSymbolicLink()) return `${current} is a symbolic link`;
  }
  const st = await lstat(path);
  const me = process.geteuid?.() ?? 0;
  if (!st.isFile()) return `${path} is not a regular file`;
  if (st.uid !== me) return `${path} belongs to uid ${st.uid}, not to us`;
  if (st.nlink !== 1) return `${path} has ${st.nlink} names (a hard link can name any file of its owner's)`;
  const [realDir, real] = await Promise.all([realpath(dir), realpath(path)]);
  if (!isUnder(real, realDir)) return `${path} is ${real}, outside ${realDir}`;
  return undefined;
}

/**
 * A disk of a kept build, checked before it is opened: the file itself (diskFileProblem), then its
 * backing chain, which may reach only the build's folder, the stage cache, the downloads and
 * `alsoWithin` (the profile's own base image); and its format is the one the record says.
 */
export async function checkedKeptDisk(kept: { id: string; workDir: string }, disk: DiskRef, command: string, alsoWithin: string[] = []): Promise<void> {
  const problem = await diskFileProblem(disk.path, kept.workDir, { mustExist: true });
  const hint = `guestforge discard ${kept.id}, then build again`;
  if (problem) throw new UserError(`${command}: the disk of the kept build ${kept.id} cannot be used: ${problem}`, { hint });
  const root = cacheDir();
  const chain = await checkedBackingChain(disk.path, command, { within: [kept.workDir, join(root, 'stages'), join(root, 'downloads'), ...alsoWithin] });
  if (chain[0]!.format !== disk.format) throw new UserError(`${command}: ${disk.path} is a ${chain[0]!.format} image, but the kept build's record says ${disk.format}`, { hint });
}
