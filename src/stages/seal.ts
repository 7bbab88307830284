/**
 * Stage 3: one guestfish launch on a new overlay that re-checks the layout,
 * cleans the guest the way virt-sysprep would, trims it, and reads back the
 * facts the verify stage judges (so verification costs no second launch).
 * Apps are not its business: the inject stage after it writes them, so a
 * build where only apps changed starts from this stage's cached disk.
 */
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { GuestSession } from '../guestfs/session.ts';
import { sysprepDone, sysprepOperations, sysprepScript } from '../guestfs/sysprep.ts';
import { factsFromJson, factsToJson, gatherFacts } from '../verify/facts.ts';
import { parsePartList } from '../verify/parse.ts';
import { addBootFacts } from '../verify/boot.ts';
import { mountGuest } from '../verify/mount.ts';
import { statField } from '../verify/parse.ts';
import type { AppsFolderMount } from '../model/facts.ts';
import { sha256Text } from '../util/fs.ts';
import { createOverlay } from '../vm/overlay.ts';
import type { Stage, StageCacheSpec } from './types.ts';
import { removeWorkFiles } from './cleanup.ts';

/** A cache entry that keeps the facts verify judges, so a hit costs no guestfish launch (seal and inject). */
export const keepsFacts: Pick<StageCacheSpec, 'save' | 'restore'> = {
  save: (ctx) => (ctx.facts ? factsToJson(ctx.facts) : undefined),
  restore(ctx, data) {
    if (data) ctx.facts = factsFromJson(data);
  },
};

/** Bump when what the seal stage does or reads back changes, so older entries are not reused. */
const sealRecipe = 4;

export const sealStage: Stage = {
  name: 'seal',
  title: 'clean-up and facts (guestfish)',
  describe() {
    return `one guestfish launch: sysprep (${sysprepOperations.map((op) => op.id).join(', ')}), facts for verify, fstrim`;
  },
  cache: {
    async inputs({ profile }) {
      const hash = (value: unknown) => sha256Text(JSON.stringify(value)).slice(0, 16);
      return {
        recipe: String(sealRecipe),
        layout: hash(profile.layout),
        sysprep: hash(sysprepScript()),
        os: hash(profile.os),
        inspect: profile.base.image ? 'inspect' : 'single-fs',
      };
    },
    ...keepsFacts,
  },
  async run(ctx, step) {
    const { profile } = ctx;
    const disk = await createOverlay(ctx.disk!, join(ctx.workDir, 'seal.qcow2'));
    step.update('launching the appliance');
    const session = await GuestSession.open([{ ...disk, discard: true }], { accel: ctx.accel, smp: 2, onRetry: (r) => ctx.log.warn(`${r}; trying once more`) });
    try {
      const root = await mountGuest(session, { readonly: false, inspect: profile.base.image !== undefined });
      step.update('sysprep');
      const said = await session.call('sh', sysprepScript());
      if (!said.includes(sysprepDone)) throw new UserError(`offline clean-up did not finish: ${said.trim().split('\n').slice(-3).join(' | ')}`);
      for (const note of await ctx.driver.offlineFixups(profile, session)) ctx.log.info(`seal: ${note}`);

      step.update('reading facts for verify');
      const mounts = await mountsOf(session);
      ctx.facts = { ...(await gatherFacts(session, root, profile.layout)), appsFolderMount: await appsFolderMount(session, mounts, profile.layout.optVm) };

      step.update('fstrim');
      await fstrimAll(session, mounts);
      // Last: it unmounts the guest to read its ESP.
      await addBootFacts(session, ctx.facts);
    } finally {
      await session.close();
    }
    ctx.disk = disk;
  },
  async cleanup(ctx, end) {
    await removeWorkFiles(ctx, end, 'seal.qcow2');
  },
};

/** Every mounted filesystem as [device, mount point] (the root, and the apps volume or /var when the image has one). */
export async function mountsOf(session: GuestSession): Promise<[string, string][]> {
  return (await session.lines('mountpoints')).map((l) => l.split(': ') as [string, string]).filter(([, m]) => m?.startsWith('/'));
}

/** fstrim every mounted filesystem, so the compressed image holds only live data. */
export async function fstrimAll(session: GuestSession, mounts?: [string, string][]): Promise<void> {
  for (const [, mountpoint] of mounts ?? (await mountsOf(session))) await session.call('fstrim', mountpoint);
}


/** What the mounted guest has at `mountpoint`: its filesystem's label, partition and top folder's owner and mode. */
export async function appsFolderMount(session: GuestSession, mounts: [string, string][], mountpoint: string): Promise<AppsFolderMount | undefined> {
  const device = mounts.find(([, m]) => m === mountpoint)?.[0];
  if (!device) return undefined;
  const label = (await session.call('vfs-label', device)).trim();
  const uuid = (await session.call('vfs-uuid', device)).trim();
  const st = await session.call('stat', mountpoint);
  let part: Pick<AppsFolderMount, 'partnum' | 'start' | 'size'> = {};
  try {
    const disk = (await session.call('part-to-dev', device)).trim();
    const partnum = Number((await session.call('part-to-partnum', device)).trim());
    const parts = parsePartList(await session.call('part-list', disk));
    const entry = parts.find((p) => p.num === partnum);
    const overlapped = entry !== undefined && parts.some((p) => p.num !== partnum && p.start < entry.start + entry.size && entry.start < p.start + p.size);
    part = { partnum, start: entry?.start, size: entry?.size, ...(overlapped ? { overlapped } : {}) };
  } catch {
    // Not a partition (a logical volume, a whole disk): no partition facts.
  }
  return { label, ...(uuid ? { uuid } : {}), ...part, mode: statField(st, 'mode'), uid: statField(st, 'uid'), gid: statField(st, 'gid') };
}
