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
import { readShipped } from '../util/project.ts';
import { factsFromJson, factsToJson, gatherFacts, mountGuest } from '../verify/facts.ts';
import { sha256Text } from '../util/fs.ts';
import { createOverlay } from '../vm/overlay.ts';
import type { Stage } from './types.ts';

/** Bump when what the seal stage does or reads back changes, so older entries are not reused. */
const sealRecipe = 1;

export const sealStage: Stage = {
  name: 'seal',
  title: 'clean-up and facts (guestfish)',
  describe() {
    return 'one guestfish launch: sysprep (cloud-init state, machine-id, host keys, caches, logs), facts for verify, fstrim';
  },
  cache: {
    async inputs({ profile }) {
      const hash = (value: unknown) => sha256Text(JSON.stringify(value)).slice(0, 16);
      return {
        recipe: String(sealRecipe),
        layout: hash(profile.layout),
        sysprep: hash(await readShipped('src', 'guestfs', 'sysprep.sh')),
        os: hash(profile.os),
        inspect: profile.base.image ? 'inspect' : 'single-fs',
      };
    },
    save: (ctx) => (ctx.facts ? factsToJson(ctx.facts) : undefined),
    restore(ctx, data) {
      if (data) ctx.facts = factsFromJson(data);
    },
  },
  async run(ctx, step) {
    const { profile } = ctx;
    const disk = await createOverlay(ctx.disk!, join(ctx.workDir, 'seal.qcow2'));
    step.update('launching the appliance');
    const session = await GuestSession.open([{ ...disk, discard: true }], { accel: ctx.accel, smp: 2, onRetry: (r) => ctx.log.warn(`${r}; trying once more`) });
    try {
      const root = await mountGuest(session, { readonly: false, inspect: profile.base.image !== undefined });
      step.update('sysprep');
      const said = await session.call('sh', await readShipped('src', 'guestfs', 'sysprep.sh'));
      if (!said.includes('sysprep-done')) throw new UserError(`offline clean-up did not finish: ${said.trim().split('\n').slice(-3).join(' | ')}`);
      for (const note of await ctx.driver.offlineFixups(profile, session)) ctx.log.info(`seal: ${note}`);

      step.update('reading facts for verify');
      ctx.facts = await gatherFacts(session, root, profile.layout);

      step.update('fstrim');
      for (const mountpoint of await mountpointsOf(session)) await session.call('fstrim', mountpoint);
    } finally {
      await session.close();
    }
    ctx.disk = disk;
  },
};

/** Every mounted filesystem's mount point (the root, and the apps volume or /var when the image has one). */
export async function mountpointsOf(session: GuestSession): Promise<string[]> {
  return (await session.lines('mountpoints')).map((l) => l.split(': ')[1] ?? '').filter((m) => m.startsWith('/'));
}
