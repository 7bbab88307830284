/**
 * A boot trim: one thing a batch VM's boot does not need, with its reason. The records live
 * with the families that apply them (src/os/<family>/format.ts, the Linux ones in
 * src/os/linux-format.ts); policy/boot.ts picks a profile's.
 */
export interface BootTrim {
  id: string;
  /** What changes in the guest. */
  what: string;
  why: string;
  /** Files written in the guest (cloud-init and apt read them at their next run). */
  files?: { path: string; content: string }[];
  /** systemd units masked. */
  mask?: string[];
  /** Applied before the build VM's packages are installed, so the build VM profits too (changes nothing else it does). */
  early?: boolean;
  /**
   * Only for these releases (os.release) of the families that list it, with the reason it is not for the
   * others (default: every release).
   */
  releases?: { only: readonly string[]; because: string };
  /**
   * Made when guestforge bootstraps the base (mmdebstrap), not by the build VM: dpkg options in
   * force from the first package on, and words given to the essential hook. An imported base
   * image keeps what it has.
   */
  bootstrap?: { dpkgopt?: string[]; hookArg?: string; stub?: StubPackage };
}

/**
 * An empty package made on the host and installed at bootstrap in place of packages the image
 * must not carry: it Provides (versioned, so versioned dependencies hold) and Conflicts with
 * them, so installing the real ones later replaces it.
 */
export interface StubPackage {
  name: string;
  version: string;
  provides: { name: string; version: string }[];
  description: string;
}
