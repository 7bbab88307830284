/** A stage against the stage cache, inside the build: hit or miss decided under the entry's lock, and a hit taken as the stage's result. */
import type { StageChain } from '../cache/chain.ts';
import type { Decision } from '../cache/decide.ts';
import type { Lock } from '../cache/store.ts';
import type { Step } from '../log.ts';
import type { BuildContext, Stage } from '../stages/types.ts';

/**
 * Hit, miss or uncached. On a miss the entry's lock is taken (waiting while
 * another build makes it) and the cache is looked at again: the other build
 * may have made it meanwhile.
 */
export async function decideAndLock(ctx: BuildContext, chain: StageChain, stage: Stage, step: Step, locked: (lock: Lock) => void): Promise<Decision> {
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

export function useEntry(ctx: BuildContext, chain: StageChain, stage: Stage, hit: Extract<Decision, { kind: 'hit' }>): void {
  ctx.disk = { path: hit.entry.path, format: 'qcow2' };
  chain.advanceTo(hit.key, hit.entry);
  stage.cache?.restore?.(ctx, hit.entry.data);
  ctx.log.info(`${stage.name}: cache hit (${hit.entry.path}, made ${hit.entry.created} for ${hit.entry.profile})`);
}
