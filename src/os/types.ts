/**
 * What differs between guest families lives behind this interface, one file
 * per family (mkosi's distribution plug-ins). The registry in index.ts is
 * typed `satisfies Record<OsFamily, OsDriver>`, so a new family does not
 * compile until it is complete.
 */
import type { GuestSession } from '../guestfs/session.ts';
import type { Profile } from '../profile/schema.ts';

export type CloudConfig = Record<string, unknown>;

/** Stages known to the pipeline; a family picks and orders the ones it runs. */
export type StageName = 'base' | 'provision' | 'inject' | 'verify' | 'finalize' | 'smoke' | 'package' | 'compose';

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
  /**
   * Family-specific offline work at the end of the inject stage's guestfish
   * session (e.g. SELinux relabel). Returns what it did, for the build log.
   */
  offlineFixups(profile: Profile, session: GuestSession): Promise<string[]>;
  /** Where cloud-init's datasource list goes. */
  readonly datasourceFile: string;
}
