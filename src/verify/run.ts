import { defaultLayout } from '../profile/schema.ts';
import { GuestSession, type GuestDisk } from '../guestfs/session.ts';
import type { Accel } from '../vm/accel.ts';
import { gatherFacts } from './facts.ts';
import { addBootFacts } from './boot.ts';
import { mountGuest } from './mount.ts';
import type { GuestFacts } from '../model/facts.ts';
import { familyOf, rules } from './rules.ts';
import type { VerifyOptions, VerifyReport } from '../model/verify.ts';

/** Without a profile: the cluster's default layout, nothing extra required; the families come from the drivers (os/index.ts guestFamilies). */
export const defaultVerifyOptions: Omit<VerifyOptions, 'families'> = { requireVrdma: false, requireNoRocm: false, ...defaultLayout };

export function evaluate(image: string, facts: GuestFacts, options: VerifyOptions): VerifyReport {
  const results = rules.map((rule) => ({ id: rule.id, title: rule.title, severity: rule.severity, ...rule.check(facts, options) }));
  const os = facts.osRelease;
  return {
    image,
    ok: !results.some((r) => r.verdict === 'fail'),
    ...(os.ID
      ? { os: { id: os.ID, family: familyOf(os, options.families)?.family ?? 'unknown', version: os.VERSION_ID ?? '', pretty: os.PRETTY_NAME ?? os.ID } }
      : {}),
    results,
    packages: [...facts.packages].map(([name, version]) => ({ name, version, ...facts.packageDetails?.[name] })).sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/** One read-only guestfish launch: mount, read the facts, judge every rule. */
export async function verifyImage(
  disk: GuestDisk,
  accel: Accel,
  options: VerifyOptions,
  onRetry?: (reason: string) => void,
): Promise<VerifyReport> {
  const session = await GuestSession.open([{ ...disk, readonly: true }], { accel, smp: 2, ...(onRetry ? { onRetry } : {}) });
  try {
    const root = await mountGuest(session, { readonly: true, inspect: true });
    const facts = await gatherFacts(session, root, options);
    // Last: it unmounts the guest to read its ESP.
    await addBootFacts(session, facts);
    return evaluate(disk.path, facts, options);
  } finally {
    await session.close();
  }
}
