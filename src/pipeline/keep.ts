/** A failed or broken-off build kept for the admin (--on-error, --break): the choice, and the record console, shell, resume and discard read. */
import { basename, join, resolve } from 'node:path';
import { errorMessage } from '../errors.ts';
import { askOnTerminal } from '../debug/ask.ts';
import { writeKept, type KeptBuild } from '../debug/kept.ts';
import type { LoadedProfile } from '../loader/profile.ts';
import type { FailureChoice, OnError } from '../model/build.ts';
import type { BuildContext, Stage } from '../stages/types.ts';
import { nonce as makeNonce } from '../util/fs.ts';
import { createOverlay } from '../vm/overlay.ts';

/** What the admin wants after a stage failed: --on-error's answer, or the terminal's. */
export async function chooseOnFailure(ctx: BuildContext, stage: Stage, error: unknown, policy: OnError): Promise<FailureChoice> {
  if (policy === 'keep') return 'keep';
  if (policy === 'cleanup') return 'cleanup';
  return askOnTerminal(`${stage.name} failed: ${errorMessage(error)}${ctx.failed?.vm ? ' (its VM is still running)' : ''}\n`, ctx.signal);
}

/** Write the record that lets console, shell, resume and discard find this build. */
export async function keepBuild(ctx: BuildContext, loaded: LoadedProfile, stages: Stage[], index: number, reason: KeptBuild['reason'], error?: unknown): Promise<KeptBuild> {
  const stage = stages[index]!;
  const failedVm = reason === 'failed' ? ctx.failed?.vm : undefined;
  // Verify judges the disk as it is now (shell may have changed it), and the manifest needs its verdicts:
  // a build kept after verify goes on from verify (on the same disk: verify, finalize and smoke do not change it).
  const verifyAt = stages.findIndex((s) => s.name === 'verify');
  const resumeIndex = verifyAt >= 0 && index > verifyAt ? verifyAt : index;
  // The disk to open and go on from: a failed build VM's own disk is looked at, but resume boots the stage's input again.
  // Resume goes on from an overlay of that input in the work folder (made once: a resumed build that stops again keeps
  // using it), which is also what `shell` opens when there is no VM disk: what shell changes is what resume starts
  // from, no cache entry is touched, and no disk the record names lies outside the folder (readKept refuses those).
  let disk = reason === 'failed' ? ctx.failed?.disk : undefined;
  let resumeDisk = ctx.disk;
  const ours = ctx.disk !== undefined && resolve(ctx.disk.path).startsWith(`${resolve(ctx.workDir)}/kept-`);
  if (ctx.disk && !ours) resumeDisk = await createOverlay(ctx.disk, join(ctx.workDir, `kept-${makeNonce(4)}.qcow2`));
  if (!disk) disk = resumeDisk;
  const inputs: KeptBuild['inputs'] = {};
  for (const earlier of stages.slice(0, resumeIndex)) inputs[earlier.name] = (await earlier.cache?.inputs(ctx)) ?? null;
  const kept: KeptBuild = {
    id: basename(ctx.workDir),
    workDir: ctx.workDir,
    profileName: ctx.profile.name,
    profileFiles: loaded.files.map((f) => resolve(f)),
    // The accelerator only: -o, --sign-key, --no-smoke, the backend and --allow-host-path come from resume's command line.
    options: { accel: ctx.accel },
    reason,
    stage: stage.name,
    plan: stages.map((s) => s.name),
    resumeIndex,
    ...(error ? { error: errorMessage(error) } : {}),
    since: new Date().toISOString(),
    ...(disk ? { disk } : {}),
    ...(resumeDisk ? { resumeDisk } : {}),
    ...(failedVm ? { vm: { pid: failedVm.pid, consoleSocket: failedVm.consoleSocket, qmpSocket: failedVm.qmpSocket, ...(failedVm.sshPort ? { sshPort: failedVm.sshPort } : {}) } } : {}),
    ...(failedVm && ctx.failed?.password ? { password: ctx.failed.password } : {}),
    inputs,
    state: {
      ...(ctx.base ? { base: ctx.base } : {}),
      timings: ctx.timings.filter((t) => stages.slice(0, resumeIndex).some((s) => s.name === t.stage)),
      warnings: ctx.warnings,
    },
  };
  await writeKept(kept);
  return kept;
}
