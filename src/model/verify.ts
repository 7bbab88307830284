/** Verify rules are records (virt-sysprep's operations): data plus a check, listed in one place. */
import type { GuestFacts, PackageDetail } from './facts.ts';

export type Verdict = 'pass' | 'fail' | 'warn' | 'skip';

export interface RuleResult {
  verdict: Verdict;
  /** What was seen, shown next to the verdict. */
  evidence: string;
}

/** How verify tells a guest's family, and what that family's verbs userspace is: each Linux OS driver gives its own. */
export interface GuestFamily {
  readonly family: string;
  /** os-release IDs (ID, or any of ID_LIKE) of this family's guests. */
  readonly osReleaseIds: readonly string[];
  /** The packages vrdma.packages requires. */
  readonly verbsPackages: readonly string[];
}

export interface VerifyOptions {
  /** The families an image may be of, in the order they are tried (the drivers' `guest`; a profile's build: its own). */
  families: readonly GuestFamily[];
  /** Check the vRDMA rules even without a profile asking for them. */
  requireVrdma: boolean;
  /** Refuse the AMD GPU runtime (ROCm, and the LLVM it brings): the profile's ucx-no-rocm trim, or --require no-rocm. */
  requireNoRocm: boolean;
  /** The firmware the image claims (the profile's disk.firmware as resolved, `verify --firmware`): boot.firmware fails when one of them cannot boot it. */
  firmware?: 'bios' | 'uefi' | 'hybrid';
  /** Check that the Secure Boot chain is signed (disk.secureBoot, `verify --require secure-boot`). */
  secureBoot?: boolean;
  workspaceMode: string;
  workspace: string;
  optVm: string;
  home: string;
}

export interface Rule {
  id: string;
  title: string;
  /** Every rule's failure fails the image; reports keep the field for their readers. */
  severity: 'error';
  /** Why the cluster needs this. */
  why: string;
  /** What counts as a pass, in words (the README's table and `verify --explain`). */
  passes: string;
  /** Where the accepted states come from (man pages, upstream documentation). */
  references?: string[];
  /** States the rule accepts, each a change to a passing guest's facts: a test checks none of them fails. */
  acceptable?: { state: string; apply(facts: GuestFacts): void }[];
  check(facts: GuestFacts, options: VerifyOptions): RuleResult;
}

export interface VerifyReport {
  image: string;
  ok: boolean;
  os?: { id: string; family: string; version: string; pretty: string };
  results: (RuleResult & { id: string; title: string; severity: Rule['severity'] })[];
  packages: ({ name: string; version: string } & PackageDetail)[];
}
