/**
 * Stage 3: one guestfish launch on a new overlay that copies the apps in,
 * re-checks the layout, cleans the guest the way virt-sysprep would, trims
 * it, and reads back the facts the verify stage judges (so verification
 * costs no second launch).
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { UserError } from '../errors.ts';
import { run } from '../exec/run.ts';
import { GuestSession } from '../guestfs/session.ts';
import type { App } from '../profile/schema.ts';
import { readShipped } from '../util/project.ts';
import { factsFromJson, factsToJson, gatherFacts, mountGuest } from '../verify/facts.ts';
import { hashTree, nonce, sha256Text } from '../util/fs.ts';
import { createOverlay } from '../vm/overlay.ts';
import type { Stage } from './types.ts';

/** Bump when what the inject stage does or reads back changes, so older entries are not reused. */
const injectRecipe = 2;

/**
 * One app into the guest. Its path must be new, or (a folder app) an empty
 * folder the profile's commands made; never a symlink or reached through one (an
 * image from elsewhere may point it at /etc). Owner and mode go to exactly
 * what the app brought (and its own folder), without following its links.
 */
export async function injectApp(session: GuestSession, app: App, scratch: string): Promise<void> {
  const [uid, gid] = app.owner.split(':') as [string, string];
  const isDir = (await stat(app.src)).isDirectory();
  const parts = app.dest.split('/').slice(1);
  for (let i = 1; i <= parts.length; i += 1) {
    const path = `/${parts.slice(0, i).join('/')}`;
    // is-symlink is false when nothing is there; exists follows links, so it is asked second.
    if (await session.bool('is-symlink', path)) throw new UserError(`app ${app.dest}: ${path} is a symlink in the image`, { hint: 'an app is never written through a link; fix the base image or choose another dest' });
    if (!(await session.bool('exists', path))) break; // nothing further down exists either
    const dir = await session.bool('is-dir', path);
    // A folder app may go into an empty folder the profile's commands made (not a link: checked
    // above; empty, so tar meets no link of the image's inside it).
    if (i === parts.length && !(dir && isDir && (await session.lines('ls', path)).length === 0)) throw new UserError(`app ${app.dest} already exists in the image`, { hint: 'each app gets a path of its own: the image (or another app) has something there' });
    if (!dir) throw new UserError(`app ${app.dest}: ${path} exists in the image and is not a folder`);
  }
  if (isDir) {
    // Owner and modes are set in a host-side copy and carried by the tar (tar-in
    // restores them as root): no guest program runs, nothing outside the app is touched.
    const staged = join(scratch, `app-${posix.basename(app.dest)}-${nonce(3)}`);
    const tar = `${staged}.tar`;
    await mkdir(staged, { mode: 0o700 });
    try {
      await run(['cp', '-a', '--no-dereference', '--', `${app.src}/.`, staged]);
      if (app.mode) await run(['find', staged, '-type', 'f', '-exec', 'chmod', app.mode, '{}', '+']);
      await run(['tar', '-C', staged, '--numeric-owner', `--owner=${uid}`, `--group=${gid}`, '-cf', tar, '.']);
      await session.call('mkdir-p', app.dest);
      await session.call('tar-in', tar, app.dest);
    } finally {
      await rm(staged, { recursive: true, force: true });
      await rm(tar, { force: true });
    }
  } else {
    await session.call('mkdir-p', posix.dirname(app.dest));
    await session.call('upload', app.src, app.dest);
    await session.call('chown', uid, gid, app.dest);
    if (app.mode) await session.call('chmod', `0${app.mode.replace(/^0/, '')}`, app.dest);
  }
}

export const injectStage: Stage = {
  name: 'inject',
  title: 'apps and clean-up (guestfish)',
  describe(profile) {
    return `one guestfish launch: ${profile.apps.length} app(s) into ${profile.layout.optVm}, layout re-check, sysprep (cloud-init state, machine-id, host keys, caches, logs), fstrim`;
  },
  cache: {
    async inputs({ profile }) {
      const hash = (value: unknown) => sha256Text(JSON.stringify(value)).slice(0, 16);
      const apps = await Promise.all(profile.apps.map(async (a) => ({ dest: a.dest, owner: a.owner, mode: a.mode ?? null, content: await hashTree(a.src) })));
      return {
        recipe: String(injectRecipe),
        apps: hash(apps),
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
    const disk = await createOverlay(ctx.disk!, join(ctx.workDir, 'inject.qcow2'));
    step.update('launching the appliance');
    const session = await GuestSession.open([{ ...disk, discard: true }], { accel: ctx.accel, smp: 2, onRetry: (r) => ctx.log.warn(`${r}; trying once more`) });
    try {
      const root = await mountGuest(session, { readonly: false, inspect: profile.base.image !== undefined });
      for (const app of profile.apps) {
        step.update(`app ${app.dest}`);
        await injectApp(session, app, ctx.workDir);
      }

      step.update('sysprep');
      const said = await session.call('sh', await readShipped('src', 'guestfs', 'sysprep.sh'));
      if (!said.includes('sysprep-done')) throw new UserError(`offline clean-up did not finish: ${said.trim().split('\n').slice(-3).join(' | ')}`);
      for (const note of await ctx.driver.offlineFixups(profile, session)) ctx.log.info(`inject: ${note}`);

      step.update('reading facts for verify');
      ctx.facts = await gatherFacts(session, root, profile.layout);

      step.update('fstrim');
      await session.call('fstrim', '/');
    } finally {
      await session.close();
    }
    ctx.disk = disk;
  },
};
