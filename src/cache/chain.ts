/**
 * The one walk over a build's stage chain: for each stage, hit, miss or
 * uncached, and who the disk is once the stage is done (the parent of the
 * next key). The build drives it with locks and stores; `plan` drives it
 * read-only, so what plan says is what the build does. The walk only looks:
 * a broken entry is removed by the build after it holds the entry's lock
 * (pipeline/cache-step.ts decideAndLock), never here.
 */
import { decide, type Decision } from './decide.ts';
import type { CacheableStage, ChainNode, Entry, KeyInputsContext, StageCache } from './store.ts';

export interface ChainOptions {
  /** undefined with --no-cache: every cached stage is a miss that is not stored. */
  cache?: StageCache;
  version: string;
  /** plan (true) or build (false); the walk itself never changes the cache either way. */
  readOnly: boolean;
  /** --rebuild-from: this stage and the ones after it run whatever the cache holds. */
  rebuildFrom?: string;
  stageNames: readonly string[];
}

export class StageChain {
  /** Who the current disk is in the cache; unset when it cannot be named. */
  node: ChainNode | undefined;
  private startsFromDisk = false;
  /** plan only: a stage before this one will run, so nothing after it can be a hit. */
  private willRun = false;

  constructor(private readonly options: ChainOptions) {}

  get version(): string {
    return this.options.version;
  }

  forced(stage: { readonly name: string }): boolean {
    const from = this.options.rebuildFrom;
    return from !== undefined && this.options.stageNames.indexOf(from) <= this.options.stageNames.indexOf(stage.name);
  }

  async decide<C extends KeyInputsContext>(stage: CacheableStage<C>, ctx: C): Promise<Decision> {
    const { cache } = this.options;
    if (!stage.cache) return { kind: 'uncached', why: 'runs on every build' };
    if (!cache) return { kind: 'uncached', why: '--no-cache' };
    if (this.willRun) {
      // What the build would say without a cache entry to find: uncached when the stage has nothing to keep.
      if (!(await stage.cache.inputs(ctx))) return { kind: 'uncached', why: 'nothing to cache for this profile' };
      return { kind: 'miss', key: '', parts: {}, why: 'the stage before it will run' };
    }
    const decision = await decide(cache, stage, ctx, { ...(this.node ? { parent: this.node } : {}), startsFromDisk: this.startsFromDisk }, this.options.version, {
      readOnly: true,
    });
    if (this.forced(stage) && decision.kind === 'hit') {
      return { kind: 'miss', key: decision.key, parts: decision.parts, why: `--rebuild-from ${this.options.rebuildFrom}` };
    }
    return decision;
  }

  /** The stage's disk is the cached entry (a hit, or the entry just stored). */
  advanceTo(key: string, entry: Pick<Entry, 'id'>): void {
    this.node = { key, id: entry.id };
    this.startsFromDisk = true;
  }

  /** The stage ran without being stored: its disk is named only if the stage can name it. */
  advanceUncached<C extends KeyInputsContext>(stage: CacheableStage<C>, ctx: C): void {
    this.node = stage.cache?.identity?.(ctx);
    this.startsFromDisk = true;
  }

  /** plan: a miss will run, so every cached stage after it misses too. */
  markWillRun(): void {
    this.willRun = true;
    this.startsFromDisk = true;
  }
}
