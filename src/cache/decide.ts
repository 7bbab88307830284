/**
 * Hit or miss for one stage, and why: shared by the build and by `plan`, so
 * what plan says is what the build does.
 */
import { changedParts, stageKey, type CacheableStage, type ChainNode, type Entry, type KeyInputsContext, type StageCache } from './store.ts';

export type Decision =
  | { kind: 'hit'; key: string; parts: Record<string, string>; entry: Entry }
  | { kind: 'miss'; key: string; parts: Record<string, string>; why: string }
  | { kind: 'uncached'; why: string };

export async function decide<C extends KeyInputsContext>(
  cache: StageCache,
  stage: CacheableStage<C>,
  ctx: C,
  chain: { parent?: ChainNode; startsFromDisk: boolean },
  version: string,
  options: { readOnly?: boolean } = {},
): Promise<Decision> {
  if (!stage.cache) return { kind: 'uncached', why: 'not a cached stage' };
  const parts = await stage.cache.inputs(ctx);
  if (!parts) return { kind: 'uncached', why: 'nothing to cache for this profile' };
  if (chain.startsFromDisk && !chain.parent) return { kind: 'uncached', why: 'the stage before it is not cached' };
  const key = stageKey(stage.name, parts, chain.parent, version);
  const lookup = await cache.lookup(stage.name, key, options);
  if (lookup.hit) return { kind: 'hit', key, parts, entry: lookup.entry };
  if (lookup.reason !== 'no entry') return { kind: 'miss', key, parts, why: lookup.reason };
  return { kind: 'miss', key, parts, why: await whyMissed(cache, stage, ctx.profile.name, parts, chain.parent, version) };
}

/** Compare with this profile's latest entry of the stage: which named input changed. */
async function whyMissed(cache: StageCache, stage: CacheableStage<KeyInputsContext>, profile: string, parts: Record<string, string>, parent: ChainNode | undefined, version: string): Promise<string> {
  const before = await cache.previous(stage.name, profile);
  if (!before) return `no ${stage.name} entry for ${profile} yet`;
  const reasons: string[] = [];
  const changed = changedParts(parts, before.parts);
  if (changed.length > 0) reasons.push(`changed: ${changed.join(', ')}`);
  if (parent && (before.parent?.key !== parent.key || before.parent?.id !== parent.id)) reasons.push('the stage before it was rebuilt or changed');
  if (before.guestforge !== version) reasons.push(`guestforge ${before.guestforge} → ${version}`);
  return reasons.join('; ') || 'inputs differ';
}
