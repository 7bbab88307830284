/**
 * What differs between guest families lives behind this interface, one file
 * per family (mkosi's distribution plug-ins). The registry in index.ts is
 * typed `satisfies Record<OsFamily, OsDriver>`, so a new family does not
 * compile until it is complete.
 */
import type { SeedFiles } from '../cloudinit/seed.ts';
import type { GuestSession } from '../guestfs/session.ts';
import type { Step } from '../log.ts';
import type { Problem } from '../model/problem.ts';
import type { Profile } from '../profile/schema.ts';
import type { BuildContext } from '../stages/types.ts';
import type { SmokeReport } from '../model/smoke.ts';
import type { DiskRef } from '../model/disk.ts';
import type { StageName } from '../model/stage.ts';

export type CloudConfig = Record<string, unknown>;

/**
 * A file the build VM needs and the image must not keep (a mirror's apt
 * credentials): the seed writes it owner-only, the build VM's last command
 * removes it, and logs and `plan` show its content as <redacted>.
 */
export interface BuildOnlyFile {
  path: string;
  content: string;
}

export interface OsDriver {
  readonly family: Profile['os']['family'];
  readonly title: string;
  /** The stages a build of this family runs, in order. */
  stages(profile: Profile): StageName[];
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
  /** Family-specific profile problems (the rules pass runs them after parsing). */
  checkProfile(profile: Profile): Problem[];
  /** Make a base from scratch (`base.bootstrap`); families without it need `base.image`. */
  bootstrap?(ctx: BuildContext, step: Step, output: string): Promise<{ source: string }>;
  /** The cache inputs of a bootstrapped base (undefined when the profile does not bootstrap). */
  bootstrapKey?(profile: Profile): Promise<string>;
  /** The build VM's NoCloud seed; undefined for a family that provisions without a VM. */
  buildSeed(profile: Profile, nonce: string): Promise<SeedFiles | undefined>;
  /** The seed `guestforge seed` writes: what the cluster hands each VM of this family. */
  clusterSeed(profile: Profile, nonce: string): Promise<SeedFiles>;
}
