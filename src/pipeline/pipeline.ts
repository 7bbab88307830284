/**
 * Runs a build: the OS driver's stages in order, one progress step each.
 * On failure or interruption every stage that ran is cleaned up in reverse
 * (Packer's step cleanup), the work folder goes, and the logs stay.
 */
import { makeWorkDir } from '../util/workdir.ts';
import { lstat, mkdir, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { UsageError, UserError } from '../errors.ts';
import type { Logger, Step } from '../log.ts';
import { driverFor } from '../os/index.ts';
import type { LoadedProfile } from '../profile/load.ts';
import { stages as registry } from '../stages/index.ts';
import { completeManifest } from '../stages/finalize.ts';
import type { BuildContext, BuildOptions, Stage } from '../stages/types.ts';
import { nonce as makeNonce, sha256Text } from '../util/fs.ts';
import { cacheDir } from '../util/paths.ts';
import type { Accel } from '../vm/accel.ts';
import type { Decision } from '../cache/decide.ts';
import { StageChain } from '../cache/chain.ts';
import { StageCache, type Lock } from '../cache/store.ts';
import { guestforgeVersion } from '../util/project.ts';
import { backendOf, describeBackend, resolveAccel } from '../vm/backend.ts';

export function plannedStages(loaded: Pick<LoadedProfile, 'profile'>, options: Pick<BuildOptions, 'smoke' | 'packageOnly'>): Stage[] {
  const driver = driverFor(loaded.profile.os.family);
  let names = driver.stages(loaded.profile).filter((name) => options.smoke || name !== 'smoke');
  if (options.packageOnly) {
    if (!names.includes('package')) throw new UsageError(`--package-only is for OSv profiles; ${driver.title} builds have no package stage`);
    names = ['package'];
  }
  const missing = names.filter((name) => !registry[name]);
  if (missing.length > 0) {
    throw new UserError(`${driver.title} builds need the stage(s) ${missing.join(', ')}, which this guestforge does not have yet`, {
      hint: 'see the README for what each guest family supports today',
    });
  }
  return names.map((name) => registry[name]!);
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
}

export async function runBuild(
  loaded: LoadedProfile,
  options: BuildOptions & { accel?: 'auto' | Accel },
  log: Logger,
  signal: AbortSignal,
): Promise<BuildOutcome> {
  const { profile } = loaded;
  const stages = plannedStages(loaded, options);
  if (options.rebuildFrom && !stages.some((s) => s.name === options.rebuildFrom)) {
    throw new UsageError(`--rebuild-from ${options.rebuildFrom}: this build has no such stage (it runs ${stages.map((s) => s.name).join(', ')})`);
  }
  const outDir = resolve(options.outDir);
  const outStat = await lstat(outDir).catch(() => undefined);
  if (outStat && !outStat.isDirectory()) throw new UsageError(`-o ${options.outDir}: exists and is not a folder`, { hint: 'name a folder for the image, its manifest and logs (made if missing)' });
  const logDir = join(outDir, 'logs', profile.name);
  await rm(logDir, { recursive: true, force: true });
  await mkdir(logDir, { recursive: true, mode: 0o700 });
  log.toFile(join(logDir, 'build.log'));
  const nonce = makeNonce(6);
  const workDir = await makeWorkDir(`${profile.name}-${nonce}`, profile.name);
  const backend = backendOf(profile.build);
  log.info(`building ${profile.name} from ${loaded.files.join(' <- ')} with ${describeBackend(backend)} (logs: ${logDir})`);

  const ctx: BuildContext = {
    profile,
    profileFile: loaded.files[0] ?? '',
    profileFiles: loaded.files,
    startedAt: new Date().toISOString(),
    profileHash: sha256Text(JSON.stringify(profile)),
    driver: driverFor(profile.os.family),
    // A package-only build starts no VM: no probe (12 s when KVM hangs).
    accel: options.packageOnly ? 'tcg' : await resolveAccel(options.accel ?? profile.build.accel, log, backend),
    backend,
    nonce,
    workDir,
    logDir,
    cacheDir: cacheDir(),
    ...(options.noCache ? {} : { cache: new StageCache(cacheDir()) }),
    log,
    signal,
    options: { ...options, outDir },
    outputs: [],
    timings: [],
    warnings: [],
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
  try {
    for (const [index, stage] of stages.entries()) {
      if (signal.aborted) throw signal.reason;
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
          ran.push(stage);
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
        throw error;
      } finally {
        await lock?.release();
      }
      ctx.timings.push({ stage: stage.name, ms: Date.now() - t0, ...(step.last ? { note: step.last } : {}) });
      step.succeed(step.last);
    }
    await completeManifest(ctx);
    log.detail(`build took ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return { ctx };
  } catch (error) {
    for (const stage of ran.reverse()) {
      await stage.cleanup?.(ctx).catch((e: unknown) => log.warn(`cleanup of ${stage.name} failed: ${(e as Error).message}`));
    }
    return { ctx, error };
  } finally {
    if (options.keepWork) log.info(`work folder kept: ${workDir}`);
    else await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * Hit, miss or uncached. On a miss the entry's lock is taken (waiting while
 * another build makes it) and the cache is looked at again: the other build
 * may have made it meanwhile.
 */
async function decideAndLock(ctx: BuildContext, chain: StageChain, stage: Stage, step: Step, locked: (lock: Lock) => void): Promise<Decision> {
  const decision = await chain.decide(stage, ctx);
  if (decision.kind !== 'miss' || !ctx.cache) return decision;
  const lock = await ctx.cache.lock(stage.name, decision.key, { profile: ctx.profile.name }, {
    signal: ctx.signal,
    onWait: (by) => {
      const message = `waiting for pid ${by.pid} (building ${by.profile}), which is making this ${stage.name} entry`;
      step.update(message);
      ctx.log.info(`${stage.name}: ${message}`);
    },
  });
  locked(lock);
  if (chain.forced(stage)) return decision;
  // Under the lock: look again (another build may have made it) and remove a broken entry.
  const again = await ctx.cache.lookup(stage.name, decision.key);
  if (again.hit) return { kind: 'hit', key: decision.key, parts: decision.parts, entry: again.entry };
  // A broken entry was removed just now, under the lock: say so rather than what the first look guessed.
  return again.reason === 'no entry' ? decision : { ...decision, why: again.reason };
}

function useEntry(ctx: BuildContext, chain: StageChain, stage: Stage, hit: Extract<Decision, { kind: 'hit' }>): void {
  ctx.disk = { path: hit.entry.path, format: 'qcow2' };
  chain.advanceTo(hit.key, hit.entry);
  stage.cache?.restore?.(ctx, hit.entry.data);
  ctx.log.info(`${stage.name}: cache hit (${hit.entry.path}, made ${hit.entry.created} for ${hit.entry.profile})`);
}
