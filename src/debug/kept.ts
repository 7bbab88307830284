/**
 * Builds kept for a look inside (`build --on-error keep`, `--break`): the
 * work folder stays, with kept.json saying which stage stopped, which disk to
 * open, which VM still runs and where the build resumes. `builds` lists them,
 * `console`/`shell` get in, `resume` goes on, `discard` removes them.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { UsageError, UserError } from '../errors.ts';
import { lockIsStale, readLock } from '../util/lock.ts';
import { qemuOptValue } from '../vm/qemu-args.ts';
import type { StageName } from '../os/types.ts';
import type { Profile } from '../profile/schema.ts';
import type { BuildContext, BuildOptions, DiskRef } from '../stages/types.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { cacheDir } from '../util/paths.ts';
import { stopKeptVm } from '../vm/qemu.ts';

export const keptFile = 'kept.json';

/** What a later stage needs from the earlier ones' context, carried over a resume. */
export type CarriedState = Pick<BuildContext, 'base' | 'packageDir' | 'timings' | 'warnings'>;

export interface KeptBuild {
  /** The work folder's name: `<profile>-<nonce>`. */
  id: string;
  workDir: string;
  profileName: string;
  /** The profile file, then every file it extends (absolute). */
  profileFiles: string[];
  /** The build's options, for resume (the debug ones dropped). */
  options: Pick<BuildOptions, 'outDir' | 'smoke' | 'signKey'> & { accel: string; build?: Partial<Pick<Profile['build'], 'backend' | 'connect' | 'pool'>>; allowHostPaths?: string[] };
  reason: 'failed' | 'break';
  /** The stage that failed, or the one the break stopped before. */
  stage: StageName;
  /** The stages the build runs, in order; `resume` starts at resumeIndex. */
  plan: StageName[];
  resumeIndex: number;
  error?: string;
  since: string;
  /** What `shell` opens. */
  disk?: DiskRef;
  /** The disk `resume` starts from (none when it starts at the first stage). */
  resumeDisk?: DiskRef;
  vm?: { pid: number; consoleSocket: string; qmpSocket: string; sshPort?: number };
  /** The kept build VM's one-time root password (the record is the owner's only). */
  password?: string;
  /** The cache inputs of the stages before the resume point: a profile changed under them cannot resume. */
  inputs: Record<string, Record<string, string> | null>;
  state: CarriedState;
}

const idPattern = /^[a-z0-9][a-z0-9._-]{0,100}$/;

export function workRoot(): string {
  return join(cacheDir(), 'work');
}

export async function writeKept(kept: KeptBuild): Promise<void> {
  await writeFileAtomic(join(kept.workDir, keptFile), `${JSON.stringify(kept, null, 2)}\n`, 0o600);
}

/**
 * The record in a kept build's folder, checked: a record that is not one
 * guestforge wrote is a string saying why. Paths the commands use (the
 * sockets) come from the folder, not the record; the disks must lie in the
 * folder (the resume disk may be a stage-cache entry), and the VM's pid must
 * be a process's.
 */
export async function readKept(dir: string): Promise<KeptBuild | string | undefined> {
  const text = await readFile(join(dir, keptFile), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let k: KeptBuild;
  try {
    k = JSON.parse(text) as KeptBuild;
  } catch {
    return 'kept.json is not JSON';
  }
  const under = (path: unknown, root: string) => typeof path === 'string' && resolve(path).startsWith(`${root}/`);
  const diskOk = (d: DiskRef | undefined, roots: string[]) => d === undefined || ((d.format === 'qcow2' || d.format === 'raw') && roots.some((r) => under(d.path, r)));
  if (!k || typeof k !== 'object') return 'kept.json holds no record';
  if (!Array.isArray(k.plan) || !Number.isInteger(k.resumeIndex) || k.resumeIndex < 0 || k.resumeIndex >= k.plan.length) return 'its plan or resume point is not valid';
  if (!Array.isArray(k.profileFiles) || typeof k.profileFiles[0] !== 'string' || typeof k.since !== 'string' || Number.isNaN(Date.parse(k.since))) return 'its profile files or date are not valid';
  if (k.vm && !(Number.isInteger(k.vm.pid) && k.vm.pid > 1)) return 'its VM pid is not valid';
  const allowed = (k.options as Partial<KeptBuild['options']> | undefined)?.allowHostPaths;
  if (allowed !== undefined && !(Array.isArray(allowed) && allowed.every((d) => typeof d === 'string'))) return 'its allowed host folders are not valid';
  if (!diskOk(k.disk, [dir]) || !diskOk(k.resumeDisk, [dir, join(cacheDir(), 'stages')])) return 'its disks lie outside its folder and the stage cache';
  return {
    ...k,
    id: basename(dir),
    workDir: dir,
    ...(k.vm ? { vm: { pid: k.vm.pid, consoleSocket: join(dir, 'console.sock'), qmpSocket: join(dir, 'qmp.sock'), ...(Number.isInteger(k.vm.sshPort) ? { sshPort: k.vm.sshPort } : {}) } } : {}),
  };
}

export async function listKept(): Promise<KeptBuild[]> {
  const names = await readdir(workRoot()).catch(() => [] as string[]);
  const found: KeptBuild[] = [];
  for (const name of names.sort()) {
    const kept = await readKept(join(workRoot(), name));
    if (kept && typeof kept !== 'string') found.push(kept);
  }
  return found;
}

/** The kept build an id names; a usage error listing the kept ones otherwise. */
export async function findKept(id: string | undefined, command: string): Promise<KeptBuild> {
  // The kept builds are read only for an error's hint.
  const listing = async () => {
    const all = await listKept();
    return all.length ? `kept builds: ${all.map((k) => k.id).join(', ')}` : 'no build is kept (build --on-error keep or --break keeps one)';
  };
  if (!id) throw new UsageError(`${command}: name a kept build`, { hint: await listing() });
  if (!idPattern.test(id)) throw new UsageError(`${command}: "${id}" is not a build id`, { hint: await listing() });
  const record = await readKept(join(workRoot(), id));
  if (typeof record === 'string') {
    throw new UserError(`${command}: the kept build ${id} has a record guestforge did not write: ${record}`, { hint: `look at ${join(workRoot(), id)}, then remove it by hand` });
  }
  if (!record) throw new UsageError(`${command}: no kept build "${id}"`, { hint: `${await listing()}; see: guestforge builds` });
  const busy = command === 'console' ? undefined : await inUse(record);
  if (busy) throw new UserError(`${command}: ${id} is in use by pid ${busy} (a resume of it runs)`, { hint: 'wait for it, or stop it (Ctrl-C cleans up a resume)' });
  return record;
}

/** The pid of a running guestforge (a resume) working in a kept build's folder, if any. */
export async function inUse(kept: KeptBuild): Promise<number | undefined> {
  const owner = await readLock(join(kept.workDir, 'owner.json'));
  return owner && !lockIsStale(owner) && owner.pid !== process.pid ? owner.pid : undefined;
}

/** Does the VM's pid still belong to that VM (a qemu with this build's QMP socket, not a process that got its number after a reboot)? */
export async function vmRunning(kept: KeptBuild): Promise<boolean> {
  if (!kept.vm) return false;
  const argv = (await readFile(`/proc/${kept.vm.pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  return basename(argv[0] ?? '').startsWith('qemu-system') && argv.some((a) => a.startsWith(`unix:${qemuOptValue(kept.vm!.qmpSocket)},`));
}

export async function stopVm(kept: KeptBuild): Promise<void> {
  if (kept.vm && (await vmRunning(kept))) await stopKeptVm(kept.vm.pid, kept.vm.qmpSocket);
}

/** Stop its VM and remove its work folder. */
export async function discardKept(kept: KeptBuild): Promise<void> {
  await stopVm(kept);
  await rm(kept.workDir, { recursive: true, force: true });
}

/** The lines `build` prints when it keeps a build, and `builds` per build. */
export function howToReach(kept: KeptBuild, running: boolean): string[] {
  const lines: string[] = [];
  if (running && kept.vm) {
    lines.push(`  console:  guestforge console ${kept.id}   (${kept.password ? `root, one-time password ${kept.password}` : 'no login: the guest never reached its report, so the console shows where it stands'}; Ctrl-] detaches)`);
    if (kept.vm.sshPort && kept.password) lines.push(`  ssh:      ssh -p ${kept.vm.sshPort} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1   (with your --debug-ssh-key)`);
  }
  if (kept.disk) lines.push(`  disk:     guestforge shell ${kept.id}   (guestfish${running && kept.vm ? ', read-only while the VM runs' : ', read-write: resume goes on from it'})`);
  lines.push(`  resume:   guestforge resume ${kept.id}   (runs ${kept.plan[kept.resumeIndex]} and what follows${kept.reason === 'failed' && kept.vm ? '; stops the VM first' : ''})`);
  lines.push(`  discard:  guestforge discard ${kept.id}   (stops the VM, removes ${kept.workDir})`);
  return lines;
}
