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

/** Pure: whether a trim is for this family and release at all (keep aside). */
export function trimApplies(trim: BootTrim, os: { family: string; release: string }): boolean {
  if (!trimFamilies(trim).includes(os.family)) return false;
  return !trim.releases || trim.releases.only.includes(os.release);
}

/** The trims a profile gets: all of its family's and release's but the ones it keeps. */
export function activeTrims(profile: { os: { family: string; release: string }; boot: { keep: readonly string[] } }): BootTrim[] {
  return bootTrims.filter((t) => !profile.boot.keep.includes(t.id) && trimApplies(t, profile.os));
}
