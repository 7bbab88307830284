/** How a build is asked to run and what it does when a stage fails (leaf types). */
import type { StageName } from './stage.ts';

export interface BuildOptions {
  outDir: string;
  smoke: boolean;
  /** Smoke under these firmwares only (--smoke-firmware); default: every one the image claims. */
  smokeFirmware?: ('bios' | 'uefi' | 'uefi-secure')[];
  keepWork: boolean;
  noCache: boolean;
  /** Run this stage and every later one even when cached (and cache the new results). */
  rebuildFrom?: StageName;
  /** OSv: write the Capstan package and stop. */
  packageOnly?: boolean;
  /** gpg key (id, fingerprint or e-mail in the keyring) to sign SHA256SUMS with. */
  signKey?: string;
  /** What a failed stage leaves: everything cleaned up (default), kept for a look inside, or asked on the terminal. */
  onError?: OnError;
  /** An SSH public key (its text) the kept build VM lets root in with, on a 127.0.0.1 port. */
  debugSshKey?: string;
  /** Stop before or after a stage as if it had failed with --on-error keep (nothing is cleaned up). */
  breakAt?: BreakPoint;
}

export type OnError = 'cleanup' | 'keep' | 'ask';

export interface BreakPoint {
  when: 'before' | 'after';
  stage: StageName;
}

/** The answer to a failed stage: clean up, keep it for a look inside, or run the stage again. */
export type FailureChoice = 'cleanup' | 'keep' | 'retry';

/** Where the build's base disk came from: the manifest and the provenance name it. */
export interface BaseSource {
  /** For people: what the base is ("mmdebstrap trixie (important) from http://…", a URL or a path). */
  source: string;
  /** A bootstrapped base: the mirror it came from, redacted (the provenance's dependency URI). */
  mirror?: string;
  sha256?: string;
  cached: boolean;
}

/**
 * How a build ended, as every stage's cleanup is told (Packer's StateCancelled, StateHalted):
 * a kept build keeps its work folder for resume; only a succeeded one keeps what it published.
 */
export type BuildEnd = 'succeeded' | 'failed' | 'cancelled' | 'kept';
