/**
 * Builds kept for a look inside (`build --on-error keep`, `--break`): the
 * work folder stays, with kept.json saying which stage stopped, which disk to
 * open, which VM still runs and where the build resumes. `builds` lists them,
 * `console`/`shell` get in, `resume` goes on, `discard` removes them.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir, readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { UsageError, UserError } from '../errors.ts';
import { lockIsStale, readLock } from '../exec/lock.ts';
import { qemuOptValue } from '../vm/qemu-args.ts';
import type { StageName } from '../model/stage.ts';
import type { BuildContext } from '../stages/types.ts';
import type { DiskRef } from '../model/disk.ts';
import type { Accel } from '../vm/accel.ts';
import { shellQuote } from '../util/quote.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { cacheDir } from '../util/paths.ts';
import { stopKeptVm } from '../vm/qemu.ts';
import { diskFileProblem, keptFileProblem, recordProblem } from './kept-check.ts';

export const keptFile = 'kept.json';

/** What a later stage needs from the earlier ones' context, carried over a resume (no path: OSv's package folder follows from -o). */
export type CarriedState = Pick<BuildContext, 'base' | 'timings' | 'warnings'>;

export interface KeptBuild {
  /** The work folder's name: `<profile>-<nonce>`. */
  id: string;
  workDir: string;
  profileName: string;
  /** The profile file, then every file it extends (absolute). */
  profileFiles: string[];
  /**
   * The accelerator, for shell's guestfish. Where the image goes, how it is signed, whether it is
   * smoke-tested, what runs the VMs and which host folders a profile may name beyond its own
   * (--allow-host-path) are not here: resume takes them from its command line, as build does
   * (`howToReach` prints the flags to give).
   */
  options: { accel: Accel };
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
 * The record in a kept build's folder, checked (kept-check.ts): a record that
 * is not one guestforge wrote is a string saying why. What the commands use is
 * rebuilt from checked fields only; the folder, its id and the VM's sockets
 * come from where the record lies, not from what it says.
 */
export async function readKept(dir: string): Promise<KeptBuild | string | undefined> {
  const file = join(dir, keptFile);
  const st = await lstat(file).catch(() => undefined);
  if (!st) return undefined;
  const unsafe = await keptFileProblem(dir, st);
  if (unsafe) return unsafe;
  // O_NOFOLLOW: a link put in its place since the look above is not followed.
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => undefined);
  if (!handle) return 'kept.json cannot be opened (a link?)';
  let k: KeptBuild;
  try {
    k = JSON.parse(await handle.readFile('utf8')) as KeptBuild;
  } catch {
    return 'kept.json is not JSON';
  } finally {
    await handle.close();
  }
  const id = basename(dir);
  const problem = recordProblem(k, id);
  if (problem) return problem;
  for (const d of [k.disk, k.resumeDisk]) {
    const why = d && (await diskFileProblem(d.path, dir));
    if (why) return `its disks lie outside its folder: ${why}`;
  }
  const { base, timings, warnings } = k.state;
  return {
    id,
    workDir: dir,
    profileName: k.profileName,
    profileFiles: k.profileFiles.filter((f) => typeof f === 'string'),
    options: { accel: k.options.accel },
    reason: k.reason,
    stage: k.stage,
    plan: k.plan,
    resumeIndex: k.resumeIndex,
    ...(k.error !== undefined ? { error: k.error } : {}),
    since: k.since,
    ...(k.disk ? { disk: { path: k.disk.path, format: k.disk.format } } : {}),
    ...(k.resumeDisk ? { resumeDisk: { path: k.resumeDisk.path, format: k.resumeDisk.format } } : {}),
    ...(k.vm ? { vm: { pid: k.vm.pid, consoleSocket: join(dir, 'console.sock'), qmpSocket: join(dir, 'qmp.sock'), ...(Number.isInteger(k.vm.sshPort) && k.vm.sshPort! > 0 && k.vm.sshPort! < 65536 ? { sshPort: k.vm.sshPort } : {}) } } : {}),
    ...(k.password !== undefined ? { password: k.password } : {}),
    inputs: k.inputs,
    state: { ...(base ? { base: { source: base.source, cached: base.cached, ...(base.sha256 ? { sha256: base.sha256 } : {}) } } : {}), timings, warnings },
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

/**
 * The lines `build` and `resume` print when they keep a build. `resumeFlags` are the running
 * command's own (-o, --sign-key, --no-smoke, the backend, --allow-host-path), for the resume line: kept.json does
 * not hold them.
 */
export function howToReach(kept: KeptBuild, running: boolean, resumeFlags: readonly string[]): string[] {
  const lines: string[] = [];
  if (running && kept.vm) {
    lines.push(`  console:  guestforge console ${kept.id}   (${kept.password ? `root, one-time password ${kept.password}` : 'no login: the guest never reached its report, so the console shows where it stands'}; Ctrl-] detaches)`);
    if (kept.vm.sshPort && kept.password) lines.push(`  ssh:      ssh -p ${kept.vm.sshPort} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1   (with your --debug-ssh-key)`);
  }
  if (kept.disk) lines.push(`  disk:     guestforge shell ${kept.id}   (guestfish${running && kept.vm ? ', read-only while the VM runs' : ', read-write: resume goes on from it'})`);
  lines.push(`  resume:   ${shellQuote(['guestforge', 'resume', kept.id, ...resumeFlags])}   (runs ${kept.plan[kept.resumeIndex]} and what follows${kept.reason === 'failed' && kept.vm ? '; stops the VM first' : ''})`);
  lines.push(`  discard:  guestforge discard ${kept.id}   (stops the VM, removes ${kept.workDir})`);
  return lines;
}
