/**
 * Which boot trims a profile gets. The trim records live with the families that apply them
 * (os/<family>/format.ts, the Linux ones in os/linux-format.ts): every job on the cluster pays
 * the boot, per node. The build VM applies them as its last step, after its own first boot has
 * run everything once (so the image is set up exactly as without them), and every later boot
 * (smoke, rehearsal, the cluster's jobs) skips them. A profile keeps any of them with
 * `boot.keep: [id]`. docs/boot.md's table is generated from these. Measured under TCG on 2 cores
 * with `systemd-analyze blame` and `cloud-init analyze blame` inside the smoke VM.
 */
import type { BootTrim } from '../model/trim.ts';
import { formatFamily, formats } from '../os/format.ts';

/** Every family's trims, each once, in the order the families list them. */
export const bootTrims: readonly BootTrim[] = [...new Set(formats.flatMap((f) => f.trims))];

export const bootTrimIds = bootTrims.map((t) => t.id) as [string, ...string[]];

/** The families whose format lists a trim. */
export const trimFamilies = (trim: BootTrim): string[] => formats.filter((f) => f.trims.includes(trim)).map(formatFamily);

/** The trims a profile gets: its family's own, for its release, but the ones it keeps. */
export function activeTrims(profile: { os: { family: string; release: string }; boot: { keep: readonly string[] } }): BootTrim[] {
  const own = formats.find((f) => formatFamily(f) === profile.os.family)?.trims ?? [];
  return own.filter((t) => !profile.boot.keep.includes(t.id) && (!t.releases || t.releases.only.includes(profile.os.release)));
}
