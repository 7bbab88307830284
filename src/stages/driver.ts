/**
 * What the pipeline and the generic stages ask of a guest family's driver. One
 * driver per family lives in src/os/<family>/ (mkosi's distribution plug-ins);
 * the registry in os/index.ts is typed `satisfies Record<OsFamily, OsDriver>`,
 * so a new family does not compile until it is complete.
 */
import type { CloudConfig } from '../cloudinit/yaml.ts';
import type { BuildOnlyFile, SeedFiles } from '../cloudinit/seed.ts';
import type { GuestSession } from '../guestfs/session.ts';
import type { Logger, Step } from '../log.ts';
import type { Accel } from '../vm/accel.ts';
import type { AppsVolume, DiskFormat, DiskLayout, DiskRef } from '../model/disk.ts';
import type { Problem } from '../model/problem.ts';
import type { GuestFamily } from '../model/verify.ts';
import type { SmokeReport } from '../model/smoke.ts';
import type { Profile } from '../profile/schema.ts';
import type { BuildContext, Stage } from './types.ts';

/** How a family's own smoke boot of an image is run (OSv's: judged by the console). */
export interface OwnSmokeOptions {
  expect?: string;
  powerOff: boolean;
  accel: Accel;
  workDir: string;
  logDir: string;
  timeoutMs: number;
  log: Logger;
  signal: AbortSignal;
  step?: Step;
}

/** An image a family recognises by itself, one that libguestfs cannot read (OSv: its loader and command line). */
export interface OwnImage {
  readonly family: Profile['os']['family'];
  /** What it looks like, for messages: "an OSv image (OSv v0.57.0)". */
  readonly looksLike: string;
  /** What `verify` prints of it, line by line, and its `--json` report's fields. */
  readonly lines: readonly string[];
  readonly report: Readonly<Record<string, unknown>>;
  /** Boot it and judge it the family's way (`smoke`). */
  smoke(image: DiskRef, options: OwnSmokeOptions): Promise<SmokeReport>;
}

export interface OsDriver {
  readonly family: Profile['os']['family'];
  readonly title: string;
  /** The plan: the stages a build of this family runs, in order (the generic ones from stages/, its own beside them). */
  plan(profile: Profile): readonly Stage[];
  /** Packages that give RDMA verbs over soft-RoCE in this family. */
  readonly vrdmaPackages: readonly string[];
  /**
   * Shell run in the build VM when a kernel lacks rdma_rxe: `install` gets
   * the versions lacking it as arguments, `remove` one version that still
   * lacks it afterwards (so that every installed kernel has it).
   */
  readonly vrdmaKernel?: { readonly install: string; readonly remove: string };
  /** cloud-config keys only this family needs in the build VM. */
  buildConfig(profile: Profile): CloudConfig;
  /** Secrets the build VM needs for a while, such as the mirror's credentials (none when undefined). */
  buildOnlyFiles?(profile: Profile): Promise<BuildOnlyFile[]>;
  /**
   * Family-specific offline work at the end of the seal stage's guestfish
   * session (e.g. SELinux relabel). Returns what it did, for the build log.
   */
  offlineFixups(profile: Profile, session: GuestSession): Promise<string[]>;
  /** The apps volume a build of this profile makes (Debian's bootstrap), or undefined: the apps folder is then a folder of the root disk. */
  appsVolume?(profile: Profile): AppsVolume | undefined;
  /** Where a build of this profile puts its partitions (Debian's bootstrap), or undefined when the layout is the base image's. */
  diskLayout?(profile: Profile): DiskLayout | undefined;
  /** Where cloud-init's datasource list goes. */
  readonly datasourceFile: string;
  /** The cluster's layout rules (/opt, workspace, apps folder) apply to this family's guests. */
  readonly clusterLayout: boolean;
  /** The image keeps the base's disk (and so needs disk.size ≥ its size); false when only a part of it is reused (OSv's loader). */
  readonly keepsBaseDisk?: boolean;
  /** base.builder means something for this family (OSv's ZFS builder kernel). */
  readonly usesBuilder?: boolean;
  /** This family's own smoke boot (OSv: the app's console output); without it, the Linux smoke with a seed runs. */
  smoke?(ctx: BuildContext, step: Step, image: DiskRef): Promise<SmokeReport>;
  /** What that smoke checks, for plan. */
  describeSmoke?(profile: Profile): string;
  /** How verify tells this family's guests and which verbs packages they need (the Linux families). */
  readonly guest?: GuestFamily;
  /** Recognise an image of this family that verify and smoke cannot treat as a Linux disk; undefined when it is not one. */
  recognize?(image: string, format: DiskFormat): Promise<OwnImage | undefined>;
  /** Family-specific profile problems (the rules pass runs them after parsing). */
  checkProfile(profile: Profile): Problem[];
  /** Make a base from scratch (`base.bootstrap`); families without it need `base.image`. */
  bootstrap?(ctx: BuildContext, step: Step, output: string): Promise<{ source: string; mirror?: string }>;
  /** The cache inputs of a bootstrapped base (undefined when the profile does not bootstrap). */
  bootstrapKey?(profile: Profile): Promise<string>;
  /** The build VM's NoCloud seed; undefined for a family that provisions without a VM. */
  buildSeed(profile: Profile, nonce: string): Promise<SeedFiles | undefined>;
  /** The seed `guestforge seed` writes: what the cluster hands each VM of this family. */
  clusterSeed(profile: Profile, nonce: string): Promise<SeedFiles>;
}
