/**
 * Stage 4: the apps. On a bootstrapped base the apps folder is a volume of
 * its own (os/debian/bootstrap.ts): its filesystem is made on the host from
 * the apps (mke2fs -d) and written over the volume's partition with
 * qemu-img, no appliance launched, about a second (apps-volume.ts). Where that cannot be
 * (an imported base, apps outside the apps folder, the build's commands
 * installed there too, the apps folder not the volume the base made, a
 * resumed build whose disk may have been changed: volumeBlocker says which),
 * one guestfish launch copies them in.
 */
import { rm, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { UserError } from '../errors.ts';
import { GuestSession } from '../guestfs/session.ts';
import type { App } from '../profile/schema.ts';
import { gatherFacts } from '../verify/facts.ts';
import { addBootFacts } from '../verify/boot.ts';
import { mountGuest } from '../verify/mount.ts';
import { hashTree, sha256Text } from '../util/fs.ts';
import { createOverlay } from '../vm/overlay.ts';
import { formatSize } from '../profile/units.ts';
import { appTar, profileBlocker, volumeBlocker, writeAppsVolume } from './apps-volume.ts';
import { fstrimAll, keepsFacts } from './seal.ts';
import type { Stage } from './types.ts';
import { removeWorkFiles } from './cleanup.ts';

/** Bump when what the inject stage does or reads back changes, so older entries are not reused. */
const injectRecipe = 5;

export const injectStage: Stage = {
  name: 'inject',
  title: 'apps',
  describe(profile, driver) {
    if (profile.apps.length === 0) return 'no apps: nothing to do';
    const volume = driver.appsVolume?.(profile);
    const blocker = profileBlocker(profile, volume);
    return volume && !blocker
      ? `${profile.apps.length} app(s) as a fresh ${formatSize(volume.bytes)} apps volume at ${volume.mountpoint} (mke2fs -d, qemu-img: no appliance; guestfish if the build's commands installed there)`
      : `${profile.apps.length} app(s) into ${profile.layout.optVm} with one guestfish launch (${blocker})`;
  },
  cache: {
    async inputs({ profile, driver }) {
      if (profile.apps.length === 0) return undefined;
      const hash = (value: unknown) => sha256Text(JSON.stringify(value)).slice(0, 16);
      const apps = await Promise.all(profile.apps.map(async (a) => ({ dest: a.dest, owner: a.owner, mode: a.mode ?? null, content: await hashTree(a.src) })));
      const volume = driver.appsVolume?.(profile);
      return {
        recipe: String(injectRecipe),
        apps: hash(apps),
        layout: hash(profile.layout),
        volume: volume ? hash(volume) : 'none',
        os: hash(profile.os),
        inspect: profile.base.image ? 'inspect' : 'single-fs',
      };
    },
    ...keepsFacts,
  },
  async run(ctx, step) {
    const { profile } = ctx;
    if (profile.apps.length === 0) {
      step.update('no apps');
      return;
    }
    const volume = ctx.driver.appsVolume?.(profile);
    const blocker = volumeBlocker(profile, volume, ctx.facts);
    const disk = await createOverlay(ctx.disk!, join(ctx.workDir, 'inject.qcow2'));
    if (volume && !blocker) {
      const started = Date.now();
      const names = await writeAppsVolume(profile.apps, volume, disk, ctx.workDir, step, ctx.facts!.appsFolderMount);
      const n = profile.apps.length;
      ctx.log.info(`inject: wrote the ${volume.bytes / 1024 / 1024} MiB apps volume at ${volume.mountpoint} (${n} app${n === 1 ? '' : 's'}, no appliance) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      const facts = ctx.facts!;
      const at = facts.paths[volume.mountpoint];
      ctx.facts = { ...facts, paths: { ...facts.paths, [volume.mountpoint]: { ...at, exists: true, isDir: true, entries: names } } };
      ctx.disk = disk;
      return;
    }
    if (volume) ctx.log.info(`inject: ${blocker}, so the apps go in with guestfish (~20 s more)`);
    step.update('launching the appliance');
    const session = await GuestSession.open([{ ...disk, discard: true }], { accel: ctx.accel, smp: 2, onRetry: (r) => ctx.log.warn(`${r}; trying once more`) });
    try {
      const root = await mountGuest(session, { readonly: false, inspect: profile.base.image !== undefined });
      for (const app of profile.apps) {
        step.update(`app ${app.dest}`);
        await injectApp(session, app, ctx.workDir);
      }
      // Again after the apps: an SELinux relabel in the seal stage ran before they were there.
      for (const note of await ctx.driver.offlineFixups(profile, session)) ctx.log.info(`inject: ${note}`);
      step.update('reading facts for verify');
      ctx.facts = await gatherFacts(session, root, profile.layout);
      step.update('fstrim');
      await fstrimAll(session);
      // Last: it unmounts the guest to read its ESP.
      await addBootFacts(session, ctx.facts);
    } finally {
      await session.close();
    }
    ctx.disk = disk;
  },
  async cleanup(ctx, end) {
    // Its scratch files (the staged tree, the volume's image, app tars) go in run's own finally.
    await removeWorkFiles(ctx, end, 'inject.qcow2');
  },
};

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
    // Owner and modes travel in the tar (tar-in restores them as root): no guest program
    // runs, nothing outside the app is touched.
    const tar = await appTar(app, scratch);
    try {
      await session.call('mkdir-p', app.dest);
      await session.call('tar-in', tar, app.dest);
    } finally {
      await rm(tar, { force: true });
    }
  } else {
    await session.call('mkdir-p', posix.dirname(app.dest));
    await session.call('upload', app.src, app.dest);
    await session.call('chown', uid, gid, app.dest);
    if (app.mode) await session.call('chmod', `0${app.mode.replace(/^0/, '')}`, app.dest);
  }
}

