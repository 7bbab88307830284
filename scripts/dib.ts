/**
 * The bench's yardstick: diskimage-builder building what the profile builds, like for like. The
 * same Debian suite from the same mirror (the lines guestforge would bootstrap from), and the
 * same packages: the ones the profile bootstraps (the cluster's MPI, NFS and METIS) and the ones
 * its build VM installs. Pure: bench.ts runs it.
 */

export interface DibProfile {
  suite: string;
  /** base.bootstrap.packages, then the profile's packages. */
  packages: string[];
}

export interface DibInvocation {
  argv: string[];
  /** An element folder to put in front of diskimage-builder's own (ELEMENTS_PATH), when the suite needs one. */
  overrideBase: boolean;
  env: Record<string, string>;
  elements: string[];
  /** Why the comparison is not quite like for like, when it is not. */
  note?: string;
}

/** The suites Debian 12's diskimage-builder (3.13) builds as it is: its base element's baseline tools exist there. */
const dibKnownSuites = new Set(['buster', 'bullseye', 'bookworm']);

/**
 * The one hook of diskimage-builder 3.13's base element that a later suite breaks: it installs
 * software-properties-common, which trixie dropped. The bench runs a copy of the host's base
 * element with this hook in its place (the same apt update, the package that still exists).
 */
export const baselineToolsHook = '#!/bin/bash\n# guestforge bench: the baseline tools without software-properties-common (gone in trixie).\nset -eu -o pipefail\napt-get -y update\ninstall-packages apt-transport-https\n';

/**
 * diskimage-builder's argv and environment. `lines` are the one-line apt sources of the suite and
 * its companions (mirrorLines); `deviceMapper` says whether its vm element can partition a disk
 * (kpartx needs the kernel's device-mapper: without it, one filesystem on the whole disk, no boot
 * loader, so the image is timed and sized but not booted); `elementsPath` holds the overriding
 * base element when the suite needs it; `cache` is diskimage-builder's own cache (DIB_IMAGE_CACHE), fresh per run like guestforge's stage
 * cache, so both builds start from nothing (its default, ~/.cache/image-create, keeps the
 * bootstrapped tree between runs).
 */
export function dibInvocation(p: DibProfile, lines: string[], deviceMapper: boolean, out: string, elementsPath?: string, cache?: string): DibInvocation {
  const uriOf = (suite: string) => lines.map((l) => l.split(' ')).find((f) => f[2] === suite)?.[1];
  const mirror = uriOf(p.suite);
  const security = uriOf(`${p.suite}-security`);
  const elements = ['debian-minimal', ...(deviceMapper ? ['vm'] : []), 'cloud-init-datasources'];
  const packages = [...new Set(p.packages)];
  const overrideBase = !dibKnownSuites.has(p.suite);
  return {
    overrideBase,
    argv: ['-o', out, '-t', 'qcow2', ...(packages.length ? ['-p', packages.join(',')] : []), ...elements],
    env: {
      DIB_RELEASE: p.suite,
      DIB_CLOUD_INIT_DATASOURCES: 'NoCloud',
      ...(overrideBase && elementsPath ? { ELEMENTS_PATH: elementsPath } : {}),
      ...(cache ? { DIB_IMAGE_CACHE: cache } : {}),
      ...(mirror ? { DIB_DISTRIBUTION_MIRROR: mirror } : {}),
      // diskimage-builder 3.13 (Debian 12's) names the security suite "<suite>-security" for bullseye only.
      ...(security ? { DIB_DEBIAN_SECURITY_MIRROR: security, DIB_DEBIAN_SECURITY_SUBPATH: '-security' } : {}),
    },
    elements,
    ...(deviceMapper ? {} : { note: 'no vm element: this kernel has no device-mapper for its partitions, so no boot loader and no boot' }),
  };
}
