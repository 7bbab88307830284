/**
 * Runs a build: the OS driver's stages in order, one progress step each.
 * On failure or interruption every stage that ran is cleaned up in reverse
 * (Packer's step cleanup), the work folder goes, and the logs stay.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
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
import { chooseAccel, probeAccel, type Accel } from '../vm/accel.ts';
import { decide, type Decision } from '../cache/decide.ts';
import { StageCache, type Lock } from '../cache/store.ts';
import { guestforgeVersion } from '../util/project.ts';
import { backendOf, describeBackend, type Backend } from '../vm/backend.ts';
import { isRemote, virsh } from '../vm/libvirt.ts';

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

export async function resolveAccel(wanted: 'auto' | Accel, log: Logger, backend?: Backend): Promise<Accel> {
  if (backend?.kind === 'libvirt' && isRemote(backend.target.uri)) {
    // The local probe says nothing about another host: ask its libvirt.
    if (wanted !== 'auto') return wanted;
    const kvm = await virsh(backend.target.uri, ['domcapabilities', '--virttype', 'kvm'], { allowFailure: true });
    const accel: Accel = kvm.exitCode === 0 ? 'kvm' : 'tcg';
    log.detail(`accelerator on ${backend.target.uri}: ${accel} (libvirt domcapabilities --virttype kvm ${kvm.exitCode === 0 ? 'works' : 'fails'}; --accel to choose)`);
    return accel;
  }
  if (wanted === 'tcg') {
    log.detail('accelerator: tcg (asked for; no KVM probe)');
    return 'tcg';
  }
  const verdict = await probeAccel();
  const accel = chooseAccel(wanted, verdict);
  log.detail(`accelerator: ${accel} (${verdict.reason})`);
  return accel;
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
  const logDir = join(outDir, 'logs', profile.name);
  await rm(logDir, { recursive: true, force: true });
  await mkdir(logDir, { recursive: true });
  log.toFile(join(logDir, 'build.log'));
  const nonce = makeNonce(6);
  const workDir = join(cacheDir(), 'work', `${profile.name}-${nonce}`);
  await mkdir(workDir, { recursive: true });
  // Who owns this work folder: cache prune clears folders of builds that died.
  await writeFile(join(workDir, 'owner.json'), JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString(), profile: profile.name }));
  const backend = backendOf(profile.build);
  log.info(`building ${profile.name} from ${loaded.files.join(' <- ')} with ${describeBackend(backend)} (logs: ${logDir})`);

  const ctx: BuildContext = {
    profile,
    profileFile: loaded.files[0] ?? '',
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
  const version = await guestforgeVersion();
  try {
    for (const [index, stage] of stages.entries()) {
      if (signal.aborted) throw signal.reason;
      const step = recording(log.step(`[${index + 1}/${stages.length}] ${stage.title}`));
      const t0 = Date.now();
      let lock: Lock | undefined;
      try {
        const forced = options.rebuildFrom !== undefined && stages.findIndex((s) => s.name === options.rebuildFrom) <= index;
        const decision = await decideAndLock(ctx, stage, step, version, forced, (l) => (lock = l));
        if (decision.kind === 'hit') {
          useEntry(ctx, stage, decision);
          await ctx.cache!.touch(decision.entry);
          step.update(`cache hit ${basename(decision.entry.path)}`);
        } else {
          if (decision.kind === 'miss') log.info(`${stage.name}: not cached (${decision.why}); running it`);
          const parent = ctx.disk && ctx.node ? { ...ctx.node, path: resolve(ctx.disk.path) } : undefined;
          ran.push(stage);
          await stage.run(ctx, step);
          if (decision.kind === 'miss') {
            const entry = await ctx.cache!.store(ctx.disk!.path, {
              stage: stage.name, key: decision.key, ...(parent ? { parent } : {}), profile: profile.name, guestforge: version, parts: decision.parts, data: stage.cache?.save?.(ctx),
            });
            ctx.disk = { path: entry.path, format: 'qcow2' };
            ctx.node = { key: decision.key, id: entry.id };
            log.detail(`${stage.name}: cached as ${entry.path}`);
            step.update(`${step.last ? `${step.last} · ` : ''}cached`);
          } else if (stage.cache) {
            const identity = stage.cache.identity?.(ctx);
            if (identity) ctx.node = identity;
            else delete ctx.node;
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
async function decideAndLock(ctx: BuildContext, stage: Stage, step: Step, version: string, forced: boolean, locked: (lock: Lock) => void): Promise<Decision> {
  if (!ctx.cache || !stage.cache) return { kind: 'uncached', why: ctx.cache ? 'not a cached stage' : '--no-cache' };
  let decision = await decide(ctx.cache, stage, ctx, { ...(ctx.node ? { parent: ctx.node } : {}), startsFromDisk: ctx.disk !== undefined }, version);
  if (forced && decision.kind === 'hit') decision = { kind: 'miss', key: decision.key, parts: decision.parts, why: `--rebuild-from ${ctx.options.rebuildFrom}` };
  if (decision.kind !== 'miss') return decision;
  const lock = await ctx.cache.lock(stage.name, decision.key, { profile: ctx.profile.name }, {
    signal: ctx.signal,
    onWait: (by) => {
      const message = `waiting for pid ${by.pid} (building ${by.profile}), which is making this ${stage.name} entry`;
      step.update(message);
      ctx.log.info(`${stage.name}: ${message}`);
    },
  });
  locked(lock);
  if (forced) return decision;
  const again = await ctx.cache.lookup(stage.name, decision.key);
  return again.hit ? { kind: 'hit', key: decision.key, parts: decision.parts, entry: again.entry } : decision;
}

function useEntry(ctx: BuildContext, stage: Stage, hit: Extract<Decision, { kind: 'hit' }>): void {
  ctx.disk = { path: hit.entry.path, format: 'qcow2' };
  ctx.node = { key: hit.key, id: hit.entry.id };
  stage.cache?.restore?.(ctx, hit.entry.data);
  ctx.log.info(`${stage.name}: cache hit (${hit.entry.path}, made ${hit.entry.created} for ${hit.entry.profile})`);
}
