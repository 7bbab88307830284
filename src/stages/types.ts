/**
 * A build is a list of stages (Packer's steps): each reads the context, adds
 * what it produces, and undoes itself. The pipeline runs them in the order the
 * OS driver plans and, however the build ends, cleans up in reverse.
 */
import type { Logger, Step } from '../log.ts';
import type { OsDriver } from './driver.ts';
import type { StageName } from '../model/stage.ts';
import type { Profile } from '../profile/schema.ts';
import type { Accel } from '../vm/accel.ts';
import type { VerifyReport } from '../model/verify.ts';
import type { GuestFacts } from '../model/facts.ts';
import type { CacheableStage, StageCache } from '../cache/store.ts';
import type { Backend } from '../vm/backend.ts';
import type { RunningVm } from '../vm/runner.ts';
import type { DiskRef, DiskUsage, OutputFile } from '../model/disk.ts';
import type { SmokeReport } from '../model/smoke.ts';
import type { BaseSource, BuildEnd, BuildOptions } from '../model/build.ts';

/** What a failed stage leaves for the admin, when the build keeps it. */
export interface FailedStageState {
  /** The build VM, still running. */
  vm?: RunningVm;
  /** The disk to look at: the running VM's, or the failed offline stage's. */
  disk?: DiskRef;
  /** The one-time root password of the kept build VM's console. */
  password?: string;
}

export interface StageTiming {
  stage: StageName;
  ms: number;
  note?: string;
}

export interface BuildContext {
  readonly profile: Profile;
  readonly profileFile: string;
  /** The profile file, then every file it extends. */
  readonly profileFiles: readonly string[];
  /** When the build started (ISO). */
  readonly startedAt: string;
  /** sha256 of the resolved profile, for the manifest. */
  readonly profileHash: string;
  readonly driver: OsDriver;
  readonly accel: Accel;
  /** What runs the build and smoke VMs. */
  readonly backend: Backend;
  /** Fresh per build: instance-id, result markers, temp names. */
  readonly nonce: string;
  readonly workDir: string;
  readonly logDir: string;
  readonly cacheDir: string;
  readonly log: Logger;
  readonly signal: AbortSignal;
  readonly options: BuildOptions;

  /** The disk the next stage starts from (each stage's disk backs the next). */
  disk?: DiskRef;
  /** The stage cache; unset with --no-cache. */
  readonly cache?: StageCache;
  base?: BaseSource;
  /** OSv: the Capstan package folder. */
  packageDir?: string;
  /** Read from the guest by the seal stage (and the inject stage, which adds the apps), judged by the verify stage. */
  facts?: GuestFacts;
  verify?: VerifyReport;
  outputs: OutputFile[];
  /** The finished disk's size and data bytes, before compression (finalize). */
  diskUsage?: DiskUsage;
  smoke?: SmokeReport;
  /** Every smoke boot, one per firmware the image claims (`smoke` is the first). */
  smokes?: SmokeReport[];
  timings: StageTiming[];
  /** Things that did not fail the build but the user should see (cloud-init degraded, …). */
  warnings: string[];
  /** Set by a stage that fails while the build may be kept (--on-error keep|ask). */
  failed?: FailedStageState;
}

/** What a stage needs to compute its cache key: no VM, no work folder. */
export type KeyContext = Pick<BuildContext, 'profile' | 'driver'>;

/**
 * A stage whose result is a disk can be cached: its key hashes the inputs the
 * cache asks for (named, so a miss can say which changed) with the parent's key and id.
 */
export interface StageCacheSpec extends NonNullable<CacheableStage<KeyContext>['cache']> {
  /** Kept with the entry and handed back on a hit (the seal and inject stages' facts). */
  save?(ctx: BuildContext): unknown;
  restore?(ctx: BuildContext, data: unknown): void;
}

export interface Stage {
  readonly name: StageName;
  readonly title: string;
  /** One line for `plan`: what this stage will do with this profile. */
  describe(profile: Profile, driver: OsDriver): string;
  run(ctx: BuildContext, step: Step): Promise<void>;
  cache?: StageCacheSpec;
  /**
   * Undo what run made (Packer's step cleanup). The pipeline calls it for every stage that ran,
   * the last first, on every exit, saying how the build ended: the files a run made in the work
   * folder go unless the build is kept (its record points at them); what a stage published goes
   * unless the build succeeded. Removing the work folder afterwards is only a safety net.
   */
  cleanup(ctx: BuildContext, end: BuildEnd): Promise<void>;
}
