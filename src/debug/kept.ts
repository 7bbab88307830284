/**
 * Builds kept for a look inside (`build --on-error keep`, `--break`): the
 * work folder stays, with kept.json saying which stage stopped, which disk to
 * open, which VM still runs and where the build resumes. `builds` lists them,
 * `console`/`shell` get in, `resume` goes on, `discard` removes them.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../errors.ts';
import type { StageName } from '../os/types.ts';
import type { BuildContext, BuildOptions, DiskRef } from '../stages/types.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { cacheDir } from '../util/paths.ts';
import { stopKeptVm } from '../vm/qemu.ts';

export const keptFile = 'kept.json';

/** What a later stage needs from the earlier ones' context, carried over a resume. */
export type CarriedState = Pick<BuildContext, 'base' | 'facts' | 'packageDir' | 'timings' | 'warnings'>;

export interface KeptBuild {
  /** The work folder's name: `<profile>-<nonce>`. */
  id: string;
  workDir: string;
  profileName: string;
  /** The profile file, then every file it extends (absolute). */
  profileFiles: string[];
  /** The build's options, for resume (the debug ones dropped). */
  options: Pick<BuildOptions, 'outDir' | 'smoke' | 'signKey'> & { accel: string };
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

export async function readKept(dir: string): Promise<KeptBuild | undefined> {
  const text = await readFile(join(dir, keptFile), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as KeptBuild;
  } catch {
    return undefined;
  }
}

export async function listKept(): Promise<KeptBuild[]> {
  const names = await readdir(workRoot()).catch(() => [] as string[]);
  const found: KeptBuild[] = [];
  for (const name of names.sort()) {
    const kept = await readKept(join(workRoot(), name));
    if (kept) found.push({ ...kept, id: name, workDir: join(workRoot(), name) });
  }
  return found;
}

/** The kept build an id names; a usage error listing the kept ones otherwise. */
export async function findKept(id: string | undefined, command: string): Promise<KeptBuild> {
  const all = await listKept();
  const listing = all.length ? `kept builds: ${all.map((k) => k.id).join(', ')}` : 'no build is kept (build --on-error keep or --break keeps one)';
  if (!id) throw new UsageError(`${command}: name a kept build`, { hint: listing });
  if (!idPattern.test(id)) throw new UsageError(`${command}: "${id}" is not a build id`, { hint: listing });
  const kept = all.find((k) => k.id === id);
  if (!kept) throw new UsageError(`${command}: no kept build "${id}"`, { hint: `${listing}; see: guestforge builds` });
  return kept;
}

/** Does the VM's pid still belong to that VM (and not to a process that got its number after a reboot)? */
export async function vmRunning(kept: KeptBuild): Promise<boolean> {
  if (!kept.vm) return false;
  const cmdline = await readFile(`/proc/${kept.vm.pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.includes(kept.vm.qmpSocket);
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
    lines.push(`  console:  guestforge console ${kept.id}   (root, one-time password ${kept.password ?? '(none)'}; Ctrl-] detaches)`);
    if (kept.vm.sshPort) lines.push(`  ssh:      ssh -p ${kept.vm.sshPort} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1   (with your --debug-ssh-key)`);
  }
  if (kept.disk) lines.push(`  disk:     guestforge shell ${kept.id}   (guestfish${running && kept.vm ? ', read-only while the VM runs' : ', read-write: resume goes on from it'})`);
  lines.push(`  resume:   guestforge resume ${kept.id}   (runs ${kept.stage} and what follows${kept.reason === 'failed' && kept.vm ? '; stops the VM first' : ''})`);
  lines.push(`  discard:  guestforge discard ${kept.id}   (stops the VM, removes ${kept.workDir})`);
  return lines;
}
