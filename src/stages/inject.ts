/**
 * Stage 4: the apps. On a bootstrapped base the apps folder is a volume of
 * its own (os/debian/bootstrap.ts): its filesystem is made on the host from
 * the apps (mke2fs -d) and written over the volume's partition with
 * qemu-img, no appliance launched, about a second. Where that cannot be
 * (an imported base, apps outside the apps folder, the build's commands
 * installed there too, the apps folder not the volume the base made, a
 * resumed build whose disk may have been changed: volumeBlocker says which),
 * one guestfish launch copies them in.
 */
import { chmod, chown, copyFile, lstat, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { UserError } from '../errors.ts';
import { run } from '../exec/run.ts';
import { GuestSession } from '../guestfs/session.ts';
import type { App, Profile } from '../profile/schema.ts';
import { gatherFacts } from '../verify/facts.ts';
import { mountGuest } from '../verify/mount.ts';
import type { AppsFolderMount, GuestFacts } from '../model/facts.ts';
import { hashTree, nonce, sha256Text } from '../util/fs.ts';
import { createOverlay } from '../vm/overlay.ts';
import { writeAtArgs } from '../vm/image.ts';
import type { AppsVolume } from '../model/disk.ts';
import { isUnder } from '../policy/paths.ts';
import { volumeOwnFolder } from '../policy/layout.ts';
import { formatSize } from '../profile/units.ts';
import { fstrimAll, keepsFacts } from './seal.ts';
import type { Stage } from './types.ts';
import type { DiskRef } from '../model/disk.ts';
import { removeWorkFiles } from './cleanup.ts';

/** Bump when what the inject stage does or reads back changes, so older entries are not reused. */
const injectRecipe = 4;


/** Pure: why this profile's apps cannot go into a fresh apps volume whatever the disk holds, or undefined. */
export function profileBlocker(profile: Pick<Profile, 'apps'>, volume: AppsVolume | undefined): string | undefined {
  if (!volume) return 'the base has no apps volume';
  const outside = profile.apps.filter((a) => !isUnder(a.dest, volume.mountpoint));
  if (outside.length) return `${outside.map((a) => a.dest).join(', ')} ${outside.length > 1 ? 'are' : 'is'} outside the apps volume (${volume.mountpoint})`;
  return undefined;
}

/**
 * Pure: why the apps cannot be written as a fresh apps volume, or undefined when they can.
 * `facts` are the seal stage's, read from the disk the inject stage starts from: a fresh
 * volume would drop whatever the build's commands installed there.
 */
export function volumeBlocker(profile: Pick<Profile, 'apps'>, volume: AppsVolume | undefined, facts: GuestFacts | undefined): string | undefined {
  const blocker = profileBlocker(profile, volume);
  if (blocker || !volume) return blocker;
  if (!facts) return 'the disk may have changed since its facts were read (a resumed build)';
  const m = facts.appsFolderMount;
  if (!m || m.label !== volume.label || m.partnum !== 2 || m.start !== volume.offset || m.size !== volume.bytes) {
    return `${volume.mountpoint} is not the apps volume the base made (${m ? `label "${m.label}", partition ${m.partnum ?? '-'} at ${m.start ?? '?'}+${m.size ?? '?'}` : 'nothing mounted there'})`;
  }
  if (m.overlapped) return `another partition overlaps the apps volume (partition 2 at ${m.start}+${m.size})`;
  const there = (facts.paths[volume.mountpoint]?.entries ?? []).filter((e) => e !== volumeOwnFolder);
  if (there.length) return `the build's commands left ${there.slice(0, 5).join(', ')}${there.length > 5 ? ' …' : ''} in ${volume.mountpoint}`;
  return undefined;
}

/** Makes the folders down to `path` (inside `top`) one by one, each root's and 0755 whatever the umask. */
async function mkdirsUnder(top: string, rel: string[]): Promise<void> {
  let at = top;
  for (const part of rel) {
    at = join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (st && !st.isDirectory()) throw new UserError(`app path ${at.slice(top.length)} is a file of another app, not a folder`);
    if (!st) {
      await mkdir(at);
      await chmod(at, 0o755);
    }
  }
}

/**
 * The apps folder's tree on the host, as the guest will see it: each app at its dest with
 * the owner and modes the profile gives (what the guestfish path sets too), folders between
 * root's and 0755. Returns the top-level names.
 */
export async function stageAppsTree(apps: readonly App[], mountpoint: string, top: string, scratch: string): Promise<string[]> {
  await mkdir(top, { recursive: true });
  await chmod(top, 0o755);
  for (const app of apps) {
    const [uid, gid] = app.owner.split(':').map(Number) as [number, number];
    const rel = posix.relative(mountpoint, app.dest).split('/');
    const target = join(top, ...rel);
    await mkdirsUnder(top, rel.slice(0, -1));
    if (await lstat(target).then(() => true, () => false)) throw new UserError(`app ${app.dest} already exists in the apps volume`, { hint: 'each app gets a path of its own' });
    if ((await stat(app.src)).isDirectory()) {
      const tar = await appTar(app, scratch);
      try {
        await mkdir(target, { mode: 0o700 });
        // As root, tar restores owners and modes (the tar's "." gives the app's own folder its).
        await run(['tar', '-C', target, '--numeric-owner', '--same-owner', '--same-permissions', '-xf', tar]);
      } finally {
        await rm(tar, { force: true });
      }
    } else {
      await copyFile(app.src, target);
      // Owner first: chown clears the setuid and setgid bits a mode may set.
      await chown(target, uid, gid);
      await chmod(target, parseInt(app.mode ?? '0644', 8));
    }
  }
  return (await readdir(top)).sort();
}

/**
 * The fast path: a fresh filesystem for the apps volume, made in `scratch` and written over
 * the volume's partition of `disk` (an overlay: what the volume held before is gone). Returns
 * the volume's top-level names.
 */
export async function writeAppsVolume(apps: readonly App[], volume: AppsVolume, disk: DiskRef, scratch: string, step: { update(text: string): void }, root?: Pick<AppsFolderMount, 'mode' | 'uid' | 'gid' | 'uuid'>): Promise<string[]> {
  const top = join(scratch, 'apps-volume');
  const image = join(scratch, 'apps-volume.img');
  await rm(top, { recursive: true, force: true });
  try {
    step.update(`staging ${apps.length} app(s)`);
    const names = await stageAppsTree(apps, volume.mountpoint, top, scratch);
    step.update(`mke2fs -d (${formatSize(volume.bytes)} volume)`);
    await rm(image, { force: true });
    // Its UUID stays (an fstab may name it so); no extended attribute or ACL of the host's
    // staging folder goes in (the guestfish path's tar carries none either).
    const uuid = root?.uuid && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(root.uuid) ? ['-U', root.uuid] : [];
    const made = await run(['mke2fs', '-q', '-F', '-t', 'ext4', '-L', volume.label, ...uuid, '-E', `root_owner=${root?.uid ?? 0}:${root?.gid ?? 0},no_copy_xattrs`, '-d', top, image, `${volume.bytes / 1024}k`], { allowFailure: true });
    if (made.exitCode !== 0) {
      const said = `${made.stderr}\n${made.stdout}`.split('\n').filter((l) => l.trim() && !l.startsWith('Creating regular file')).slice(-2).join(' | ');
      const full = /allocate|space|too many|inode/i.test(said);
      throw new UserError(full ? `the apps do not fit in the ${formatSize(volume.bytes)} apps volume (${said})` : `mke2fs could not make the apps volume: ${said}`, {
        hint: full ? 'raise disk.appsVolume in the profile' : undefined,
      });
    }
    // The volume's top keeps what the build gave it (owner above, mode here), as a copy into
    // it would: mke2fs -d makes it 0755 whatever the folder's mode (our own new image, so
    // debugfs edits nothing of the guest's).
    const topMode = (root?.mode ?? 0o40755) & 0o7777;
    if (topMode !== 0o755) {
      await run(['debugfs', '-w', '-R', `sif / mode 04${topMode.toString(8).padStart(4, '0')}`, image]);
      // debugfs exits 0 when a request fails: read the mode back.
      const back = await run(['debugfs', '-R', 'stat /', image]);
      const seen = /Mode:\s+0?(\d+)/.exec(back.stdout)?.[1];
      if (seen === undefined || parseInt(seen, 8) !== topMode) throw new Error(`debugfs did not set the apps volume's top folder to ${topMode.toString(8)} (it says ${seen ?? 'nothing'})`);
    }
    step.update('writing the volume (qemu-img)');
    await run(writeAtArgs(image, disk, volume.offset, volume.bytes), { timeoutMs: 10 * 60_000 });
    return names;
  } finally {
    await rm(top, { recursive: true, force: true });
    await rm(image, { force: true });
  }
}

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
 * A folder app as a tar, the same for both paths: copied on the host (links as links), its
 * files given the profile's mode, every entry the profile's owner (`--owner`, numeric). No
 * extended attributes or ACLs: what the source tree carries of those stays out of the image.
 */
export async function appTar(app: App, scratch: string): Promise<string> {
  const [uid, gid] = app.owner.split(':') as [string, string];
  const staged = join(scratch, `app-${posix.basename(app.dest)}-${nonce(3)}`);
  const tar = `${staged}.tar`;
  await mkdir(staged, { mode: 0o700 });
  try {
    await run(['cp', '-a', '--no-dereference', '--', `${app.src}/.`, staged]);
    if (app.mode) await run(['find', staged, '-type', 'f', '-exec', 'chmod', app.mode, '{}', '+']);
    await run(['tar', '-C', staged, '--numeric-owner', `--owner=${uid}`, `--group=${gid}`, '-cf', tar, '.']);
    return tar;
  } catch (error) {
    await rm(tar, { force: true });
    throw error;
  } finally {
    await rm(staged, { recursive: true, force: true });
  }
}

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

