/**
 * Runs a build: the OS driver's stages in order, one progress step each.
 * On failure or interruption every stage that ran is cleaned up in reverse
 * (Packer's step cleanup), the work folder goes, and the logs stay.
 */
import { ensureTrustedDir } from '../util/trusted-path.ts';
import { makeWorkDir } from '../util/workdir.ts';
import { lstat, mkdir, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { errorMessage, UsageError } from '../errors.ts';
import { discardKept, type KeptBuild } from '../debug/kept.ts';
import type { Logger, Step } from '../log.ts';
import { driverFor } from '../os/index.ts';
import type { LoadedProfile } from '../loader/profile.ts';
import { completeManifest } from '../stages/finalize.ts';
import type { BuildContext, Stage } from '../stages/types.ts';
import type { OsDriver } from '../stages/driver.ts';
import type { BreakPoint, BuildEnd, BuildOptions } from '../model/build.ts';
import { nonce as makeNonce, sha256Text } from '../util/fs.ts';
import { cacheDir } from '../util/paths.ts';
import type { Accel } from '../vm/accel.ts';
import { StageChain } from '../cache/chain.ts';
import { StageCache, type Lock } from '../cache/store.ts';
import { guestforgeVersion } from '../util/project.ts';
import { backendOf, describeBackend, resolveAccel } from '../vm/backend.ts';
import { decideAndLock, useEntry } from './cache-step.ts';
import { chooseOnFailure, keepBuild } from './keep.ts';

export function plannedStages(loaded: Pick<LoadedProfile, 'profile'>, options: Pick<BuildOptions, 'smoke' | 'packageOnly'>, driver: OsDriver = driverFor(loaded.profile.os.family)): Stage[] {
  const planned = driver.plan(loaded.profile).filter((stage) => options.smoke || stage.name !== 'smoke');
  if (!options.packageOnly) return [...planned];
  const only = planned.filter((stage) => stage.name === 'package');
  if (only.length === 0) throw new UsageError(`--package-only is for OSv profiles; ${driver.title} builds have no package stage`);
  return only;
}

/** A Step that remembers its last detail, for the stage's summary line. */
function recording(step: Step): Step & { last: string } {
  const wrapped = {
    last: '',
    update(detail: string) {
      wrapped.last = detail;
      step.update(detail);
    },
    succeed: (d?: string) => step.succeed(d),
    fail: (d?: string) => step.fail(d),
  };
  return wrapped;
}

export interface BuildOutcome {
  ctx: BuildContext;
  error?: unknown;
  /** The build stopped (a failure with --on-error keep|ask, or --break) and was kept for a look inside. */
  kept?: KeptBuild;
}

/** `guestforge resume`: the kept build's folder, where to start, from which disk, with what the earlier stages left. */
export interface ResumeFrom {
  kept: KeptBuild;
}

/** Checks --break against the plan: a usage error names the stages it can be. */
export function breakIndex(stages: readonly Stage[], at: BreakPoint | undefined): number | undefined {
  if (!at) return undefined;
  const names = stages.map((s) => s.name);
  const index = names.indexOf(at.stage);
  if (index < 0) throw new UsageError(`--break ${at.when}:${at.stage}: this build has no ${at.stage} stage (it runs ${names.join(', ')})`);
  const stopBefore = at.when === 'before' ? index : index + 1;
  if (stopBefore === 0) throw new UsageError(`--break before:${at.stage}: nothing has run yet there; there is nothing to look at`, { hint: `break after:${at.stage} or before a later stage (${names.slice(1).join(', ')})` });
  if (stopBefore >= names.length) throw new UsageError(`--break after:${at.stage}: it is the last stage; the build is done there`, { hint: `break before:${at.stage} or at an earlier stage` });
  return stopBefore;
}

export async function runBuild(
  loaded: LoadedProfile,
  options: BuildOptions & { accel?: 'auto' | Accel; resume?: ResumeFrom; /** The profile family's driver unless given (the pipeline's tests give a fake). */ driver?: OsDriver },
  log: Logger,
  signal: AbortSignal,
): Promise<BuildOutcome> {
  const { profile } = loaded;
  const driver = options.driver ?? driverFor(profile.os.family);
  const stages = plannedStages(loaded, options, driver);
  if (options.rebuildFrom && !stages.some((s) => s.name === options.rebuildFrom)) {
    throw new UsageError(`--rebuild-from ${options.rebuildFrom}: this build has no such stage (it runs ${stages.map((s) => s.name).join(', ')})`);
  }
  const stopBefore = breakIndex(stages, options.breakAt);
  const resume = options.resume?.kept;
  const firstIndex = resume ? resume.resumeIndex : 0;
  // Whatever a record says: verify judges the disk as it is now, so a resume never starts past it.
  const verifyIndex = stages.findIndex((s) => s.name === 'verify');
  if (resume && verifyIndex >= 0 && firstIndex > verifyIndex) throw new UsageError(`resume: ${resume.id} would start at ${stages[firstIndex]?.name}, after verify; a resume never skips verify`);
  if (stopBefore !== undefined && stopBefore <= firstIndex) throw new UsageError(`--break ${options.breakAt!.when}:${options.breakAt!.stage}: the resumed build starts at ${stages[firstIndex]?.name}, after that point`);
  const outDir = resolve(options.outDir);
  const outStat = await lstat(outDir).catch(() => undefined);
  if (outStat && !outStat.isDirectory() && !outStat.isSymbolicLink()) throw new UsageError(`-o ${options.outDir}: exists and is not a folder`, { hint: 'name a folder for the image, its manifest and logs (made if missing)' });
  await ensureTrustedDir(outDir, `-o ${options.outDir}`);
  // Checked before anything is removed there: out/logs swapped for a link would point the rm elsewhere.
  const logDir = await ensureTrustedDir(join(outDir, 'logs', profile.name), `-o ${options.outDir}`, 0o700);
  // A resumed build adds to the kept build's logs.
  if (!resume) {
    await rm(logDir, { recursive: true, force: true });
    await mkdir(logDir, { mode: 0o700 });
  }
  log.toFile(join(logDir, 'build.log'));
  const nonce = resume ? resume.id.slice(profile.name.length + 1) : makeNonce(6);
  const workDir = await makeWorkDir(`${profile.name}-${nonce}`, profile.name);
  const backend = backendOf(profile.build);
  log.info(`${resume ? `resuming ${resume.id} at ${stages[firstIndex]?.name}` : 'building'} ${profile.name} from ${loaded.files.join(' <- ')} with ${describeBackend(backend)} (logs: ${logDir})`);

  const ctx: BuildContext = {
    profile,
    profileFile: loaded.files[0] ?? '',
    profileFiles: loaded.files,
    startedAt: new Date().toISOString(),
    profileHash: sha256Text(JSON.stringify(profile)),
    driver,
    // A package-only build starts no VM: no probe (12 s when KVM hangs).
    accel: options.packageOnly ? 'tcg' : await resolveAccel(options.accel ?? profile.build.accel, log, backend),
    backend,
    nonce,
    workDir,
    logDir,
    cacheDir: cacheDir(),
    // A resumed build caches nothing: its disk may have been changed by hand (guestforge shell).
    ...(options.noCache || resume ? {} : { cache: new StageCache(cacheDir()) }),
    log,
    signal,
    options: { ...withoutDriver(options), outDir },
    outputs: [],
    timings: [],
    warnings: [],
    ...(resume ? { ...resume.state, timings: [...resume.state.timings], warnings: [...resume.state.warnings] } : {}),
    ...(resume?.resumeDisk ? { disk: resume.resumeDisk } : {}),
  };

  const ran: Stage[] = [];
  const started = Date.now();
  const chain = new StageChain({
    ...(ctx.cache ? { cache: ctx.cache } : {}),
    version: await guestforgeVersion(),
    readOnly: false,
    ...(options.rebuildFrom ? { rebuildFrom: options.rebuildFrom } : {}),
    stageNames: stages.map((s) => s.name),
  });
  let kept: KeptBuild | undefined;
  let end: BuildEnd = 'failed';
  // Keeping must not lose the build: if writing the record fails, or a signal comes meanwhile, it is cleaned up as usual.
  const keep = async (index: number, reason: KeptBuild['reason'], error?: unknown) => {
    try {
      const record = await keepBuild(ctx, loaded, stages, index, reason, error);
      if (signal.aborted) {
        await discardKept(record);
        throw signal.reason;
      }
      kept = record;
    } catch (failure) {
      if (!signal.aborted) log.warn(`the build could not be kept: ${errorMessage(failure)}`);
      await ctx.failed?.vm?.stop();
      throw signal.aborted ? signal.reason : error ?? failure;
    }
  };
  try {
    for (let index = firstIndex; index < stages.length; index += 1) {
      const stage = stages[index]!;
      if (signal.aborted) throw signal.reason;
      if (index === stopBefore) {
        await keep(index, 'break');
        log.info(`stopped before ${stage.name} (--break ${options.breakAt!.when}:${options.breakAt!.stage}); the build is kept as ${kept!.id}`);
        // Nothing unfinished stays at the output path (a break after finalize takes its image back; resume makes it again).
        end = 'kept';
        return { ctx, kept };
      }
      const input = ctx.disk;
      const step = recording(log.step(`[${index + 1}/${stages.length}] ${stage.title}`));
      const t0 = Date.now();
      let lock: Lock | undefined;
      try {
        const decision = await decideAndLock(ctx, chain, stage, step, (l) => (lock = l));
        if (decision.kind === 'hit') {
          useEntry(ctx, chain, stage, decision);
          await ctx.cache!.touch(decision.entry);
          step.update(`cache hit ${basename(decision.entry.path)}`);
        } else {
          if (decision.kind === 'miss') log.info(`${stage.name}: not cached (${decision.why}); running it`);
          const parent = ctx.disk && chain.node ? { ...chain.node, path: resolve(ctx.disk.path) } : undefined;
          if (!ran.includes(stage)) ran.push(stage);
          await stage.run(ctx, step);
          if (decision.kind === 'miss' && ctx.cache) {
            const entry = await ctx.cache.store(ctx.disk!.path, {
              stage: stage.name, key: decision.key, ...(parent ? { parent } : {}), profile: profile.name, guestforge: chain.version, parts: decision.parts, data: stage.cache?.save?.(ctx),
            });
            ctx.disk = { path: entry.path, format: 'qcow2' };
            chain.advanceTo(decision.key, entry);
            log.detail(`${stage.name}: cached as ${entry.path}`);
            step.update(`${step.last ? `${step.last} · ` : ''}cached`);
          } else {
            chain.advanceUncached(stage, ctx);
          }
        }
      } catch (error) {
        step.fail(signal.aborted ? 'interrupted' : undefined);
        await lock?.release();
        lock = undefined;
        const choice = signal.aborted ? 'cleanup' : await chooseOnFailure(ctx, stage, error, options.onError ?? 'cleanup');
        if (choice === 'keep') {
          await keep(index, 'failed', error);
          throw error;
        }
        await ctx.failed?.vm?.stop();
        ctx.failed = undefined;
        if (choice !== 'retry') throw error;
        await undo(stage, ctx, 'failed');
        log.info(`${stage.name}: running it again, as asked`);
        ctx.disk = input;
        index -= 1;
        continue;
      } finally {
        await lock?.release();
      }
      ctx.timings.push({ stage: stage.name, ms: Date.now() - t0, ...(step.last ? { note: step.last } : {}) });
      step.succeed(step.last);
    }
    await completeManifest(ctx);
    end = 'succeeded';
    log.detail(`build took ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return { ctx };
  } catch (error) {
    // Even a kept build takes back what it published (finalize's outputs): the output folder never holds a failed image.
    end = kept ? 'kept' : signal.aborted ? 'cancelled' : 'failed';
    return { ctx, error, ...(kept ? { kept } : {}) };
  } finally {
    await cleanUp(ran, ctx, end);
    if (kept) log.detail(`work folder kept for ${kept.id}: ${workDir}`);
    else if (options.keepWork) log.info(`work folder kept: ${workDir}`);
    else await rm(workDir, { recursive: true, force: true });
  }
}

/** The build's options as the context and a kept build's record hold them: no driver object. */
function withoutDriver<T extends { driver?: unknown }>(options: T): Omit<T, 'driver'> {
  const { driver: _driver, ...rest } = options;
  return rest;
}

/** Every stage that ran takes back what it made, the last first, told how the build ended (Packer's step cleanup). */
async function cleanUp(ran: Stage[], ctx: BuildContext, end: BuildEnd): Promise<void> {
  for (const stage of [...ran].reverse()) await undo(stage, ctx, end);
}

/** One stage's cleanup; its failure is said, and the other cleanups still run. */
async function undo(stage: Stage, ctx: BuildContext, end: BuildEnd): Promise<void> {
  await stage.cleanup(ctx, end).catch((e: unknown) => ctx.log.warn(`cleanup of ${stage.name} failed: ${(e as Error).message}`));
}
