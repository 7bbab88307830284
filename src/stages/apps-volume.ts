/**
 * The apps volume written on the host, no appliance: when the profile's apps may go into a fresh
 * volume (the blockers), the apps staged as a tree with their owners and modes, the filesystem
 * made from it (mke2fs -d) and written over the volume's partition of a qcow2 overlay with
 * qemu-img. The inject stage (inject.ts) uses it, or guestfish where it cannot.
 */
import { chmod, chown, copyFile, lstat, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { UserError } from '../errors.ts';
import { run } from '../exec/run.ts';
import type { AppsVolume, DiskRef } from '../model/disk.ts';
import type { AppsFolderMount, GuestFacts } from '../model/facts.ts';
import { volumeOwnFolder } from '../policy/layout.ts';
import { isUnder } from '../policy/paths.ts';
import type { App, Profile } from '../profile/schema.ts';
import { formatSize } from '../profile/units.ts';
import { nonce } from '../util/fs.ts';
import { writeAtArgs } from '../vm/image.ts';
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
