/**
 * Cross-field checks that the schema cannot express, run after parsing.
 * Each returns problems with the field path they concern.
 */
import { constants } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { imageInfo } from '../vm/image.ts';
import type { Profile } from '../profile/schema.ts';
import type { Problem } from '../model/problem.ts';
import { clusterOpt, layoutProblems, volumeOwnFolder } from '../policy/layout.ts';
import { guestPathProblem, isUnder } from '../policy/paths.ts';
import { firmwareProblem } from '../policy/firmware.ts';
import { driverFor } from '../os/index.ts';
import { parseCloudConfig } from '../cloudinit/yaml.ts';
import { readUntrusted } from '../util/fs.ts';
import { formatSize, parseSize } from '../profile/units.ts';


/** Smallest disk a bootstrapped Debian guest fits in, with room for packages. */
export const minBootstrapDisk = 2 * 1024 ** 3;

/** Smallest apps volume: an ext4 with a journal and room for a few apps. */
export const minAppsVolume = 16 * 1024 ** 2;

/**
 * An app gets a path of its own strictly inside the apps folder or a root the
 * profile allows: never a system folder, never the folder itself (its owner
 * and modes are set on what the app brings, so it must not be a shared tree).
 */
function appDestProblem(dest: string, layout: Profile['layout']): Problem['message'] | undefined {
  if (guestPathProblem(dest)) return undefined; // the schema said so already
  const roots = [layout.optVm, ...layout.appRoots];
  if (roots.includes(dest)) return `"${dest}" is the apps folder itself: give the app a folder or file of its own inside it (e.g. ${posix.join(dest, 'myapp')})`;
  const lostFound = roots.map((r) => posix.join(r, volumeOwnFolder)).find((l) => dest === l || isUnder(dest, l));
  if (lostFound) return `"${dest}" is in ${lostFound}, the apps volume's own folder for e2fsck`;
  if (roots.some((r) => isUnder(dest, r))) return undefined;
  return `"${dest}" is outside the apps folder ${layout.optVm}${layout.appRoots.length ? ` and layout.appRoots (${layout.appRoots.join(', ')})` : ''}`;
}

const cryptHash = /^\$(1|5|6|y|2[aby])\$/;

/** Pure: plaintext passwords in extra cloud-config (chpasswd, password, plain_text_passwd, passwd), by where they sit. */
export function plaintextPasswords(config: unknown): string[] {
  if (typeof config !== 'object' || config === null) return [];
  const c = config as Record<string, unknown>;
  const found: string[] = [];
  if (typeof c.password === 'string') found.push('password');
  const chpasswd = c.chpasswd as Record<string, unknown> | undefined;
  if (chpasswd && typeof chpasswd === 'object') {
    if (chpasswd.list !== undefined) found.push('chpasswd.list');
    for (const [i, u] of (Array.isArray(chpasswd.users) ? chpasswd.users : []).entries()) {
      const e = u as Record<string, unknown>;
      if (typeof e.password === 'string' && !(e.type === 'hash' && cryptHash.test(e.password))) found.push(`chpasswd.users[${i}].password`);
    }
  }
  for (const [i, u] of (Array.isArray(c.users) ? c.users : []).entries()) {
    const e = (typeof u === 'object' && u !== null ? u : {}) as Record<string, unknown>;
    if (typeof e.plain_text_passwd === 'string') found.push(`users[${i}].plain_text_passwd`);
    if (typeof e.passwd === 'string' && !cryptHash.test(e.passwd)) found.push(`users[${i}].passwd`);
    if (typeof e.hashed_passwd === 'string' && e.name === 'root') found.push(`users[${i}].hashed_passwd (root)`);
  }
  return found;
}

/** The extra user-data is read at validate (a file: size-capped, a regular file), not first at build. */
async function userDataProblems(profile: Profile): Promise<Problem[]> {
  const extra = profile.cloudInit.userData;
  if (extra === undefined) return [];
  let config: unknown = extra;
  if (typeof extra === 'string') {
    const text = await readUntrusted(extra, 1024 * 1024, { followLinks: true }); // the profile's author named it
    if (text === undefined) return [{ path: ['cloudInit', 'userData'], message: `cannot read ${extra}: not a regular file, or missing` }];
    if (!text.startsWith('#cloud-config')) return [{ path: ['cloudInit', 'userData'], message: `${extra} does not start with #cloud-config`, hint: 'guestforge merges cloud-config documents only' }];
    try {
      config = parseCloudConfig(text);
    } catch (error) {
      return [{ path: ['cloudInit', 'userData'], message: `${extra}: ${(error as Error).message.split('\n')[0]}` }];
    }
  }
  const plain = plaintextPasswords(config);
  return plain.length
    ? [{ path: ['cloudInit', 'userData'], message: `plaintext or root passwords in the extra user-data: ${plain.join(', ')}`, hint: 'users[].passwordHash takes a crypt(3) hash (mkpasswd -m sha-512) for regular users; root logs in with keys' }]
    : [];
}

async function imageVirtualSize(path: string): Promise<number | undefined> {
  return imageInfo(path).then((i) => i.virtualSize, () => undefined);
}

export async function checkRules(profile: Profile): Promise<Problem[]> {
  const problems: Problem[] = [];
  const family = profile.os.family;
  const { layout } = profile;

  const driver = driverFor(family);
  if (profile.base.bootstrap && !driver.bootstrap) {
    problems.push({
      path: ['base', 'bootstrap'],
      message: `bootstrap is only for Debian guests, not ${family}`,
      hint: 'use base.image with a vendor cloud image and its sha256',
    });
  }
  problems.push(...driver.checkProfile(profile));
  const firmware = firmwareProblem(profile);
  if (firmware) problems.push(firmware);
  if (profile.smoke.expect !== undefined && !driver.smoke) problems.push({ path: ['smoke', 'expect'], message: `${driver.title} images are smoke-checked from inside, not by their console output`, hint: 'smoke.expect is for OSv apps' });
  const builderPath = profile.base.builder?.path;
  if (builderPath !== undefined && !(await stat(builderPath).then((st) => st.isFile(), () => false))) {
    problems.push({ path: ['base', 'builder', 'path'], message: `no such file: ${builderPath}` });
  }
  if (profile.base.builder && !driver.usesBuilder) problems.push({ path: ['base', 'builder'], message: `${driver.title} guests have no builder kernel`, hint: 'base.builder is for OSv: its ZFS builder kernel' });

  const dests: string[] = [];
  for (const [index, app] of profile.apps.entries()) {
    // OSv images have no cluster layout: an app goes where its command line expects it.
    const problem = driver.clusterLayout ? appDestProblem(app.dest, layout) : undefined;
    // Under /opt is the layout rule's to say (with its own hint).
    if (problem && !isUnder(app.dest, clusterOpt)) problems.push({ path: ['apps', index, 'dest'], message: problem, hint: `put it under ${layout.optVm}, or list its root in layout.appRoots` });
    dests.push(guestPathProblem(app.dest) || (problem && !isUnder(app.dest, clusterOpt)) ? '' : app.dest);
    const st = await stat(app.src).catch((error: NodeJS.ErrnoException) => error.code ?? 'error');
    if (typeof st === 'string') {
      problems.push({ path: ['apps', index, 'src'], message: st === 'ENOENT' ? `no such file or directory: ${app.src}` : `cannot read ${app.src}: ${st}` });
    } else if (!st.isFile() && !st.isDirectory()) {
      problems.push({ path: ['apps', index, 'src'], message: `${app.src} is not a file or folder (a device, FIFO or socket would be read forever)` });
    } else if (!(await access(app.src, constants.R_OK).then(() => true, () => false))) {
      problems.push({ path: ['apps', index, 'src'], message: `${app.src} is not readable` });
    } else if (st.isDirectory()) {
      const special = await specialFileIn(app.src);
      if (special) problems.push({ path: ['apps', index, 'src'], message: special, hint: 'an app tree holds files, folders and links; a device node would give the guest a door to its hardware' });
    }
  }
  for (const problem of driver.clusterLayout ? layoutProblems(layout, dests) : []) problems.push(problem);
  // Two apps at one path, or one inside another: the second would land in (or over) the first.
  for (const [index, app] of profile.apps.entries()) {
    const earlier = profile.apps.findIndex((other, j) => j < index && (isUnder(app.dest, other.dest) || isUnder(other.dest, app.dest)));
    if (earlier >= 0) {
      problems.push({
        path: ['apps', index, 'dest'],
        message: `${app.dest} ${app.dest === profile.apps[earlier]!.dest ? 'is also' : 'overlaps'} the dest of apps[${earlier}] (${profile.apps[earlier]!.dest})`,
        hint: 'each app gets a path of its own; with extends, apps lists append (a profile adds apps, it cannot replace its parent\'s)',
      });
    }
  }

  problems.push(...(await userDataProblems(profile)));

  const seenUsers = new Map<string, number>();
  for (const [index, user] of profile.users.entries()) {
    if (seenUsers.has(user.name)) {
      problems.push({ path: ['users', index, 'name'], message: `user "${user.name}" is listed twice` });
    }
    seenUsers.set(user.name, index);
    if (user.name === 'root' && user.passwordHash) {
      problems.push({ path: ['users', index, 'passwordHash'], message: 'root gets no password: every VM of the image would share it', hint: 'log in with sshKeys; give a regular user sudo if needed' });
    }
  }

  const diskBytes = parseSize(profile.disk.size);
  if (profile.base.bootstrap && diskBytes < minBootstrapDisk) {
    problems.push({ path: ['disk', 'size'], message: `${profile.disk.size} is too small for a bootstrapped guest`, hint: `use at least ${formatSize(minBootstrapDisk)}` });
  }
  const volume = driver.appsVolume?.(profile)?.bytes;
  if (volume !== undefined) {
    if (volume < minAppsVolume) problems.push({ path: ['disk', 'appsVolume'], message: `${profile.disk.appsVolume} is too small for an ext4 apps volume`, hint: `use at least ${formatSize(minAppsVolume)}, or "none" to keep apps in the root filesystem` });
    else if (diskBytes >= minBootstrapDisk && diskBytes - volume < minBootstrapDisk) problems.push({ path: ['disk', 'appsVolume'], message: `${profile.disk.appsVolume} leaves the root filesystem ${formatSize(diskBytes - volume)} of the ${profile.disk.size} disk`, hint: `the root needs ${formatSize(minBootstrapDisk)}: raise disk.size or lower disk.appsVolume` });
  }
  const image = profile.base.image;
  if (image?.path) {
    const exists = await stat(image.path).then(() => true, () => false);
    const needed = exists ? await imageVirtualSize(image.path).catch(() => undefined) : undefined;
    if (!exists) {
      problems.push({ path: ['base', 'image', 'path'], message: `no such file: ${image.path}` });
    } else if (needed !== undefined && needed > diskBytes && driverFor(profile.os.family).keepsBaseDisk !== false) {
      // (An OSv compose keeps only the base's loader: os/osv/disk.ts checks the size it needs.)
        problems.push({
          path: ['disk', 'size'],
          message: `${profile.disk.size} is smaller than the base image (${formatSize(needed)})`,
          hint: `use at least ${Math.ceil(needed / 1024 ** 3)}G`,
        });
    }
  }
  return problems;
}

/** Why an app folder cannot go into an image as it is (a device node, FIFO or socket inside, a folder that cannot be read), or undefined. Every entry is looked at: a large tree (a conda env) only takes longer. */
export async function specialFileIn(dir: string): Promise<string | undefined> {
  const pending = [dir];
  while (pending.length > 0) {
    const folder = pending.pop()!;
    const entries = await readdir(folder, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => `${folder} cannot be read: ${error.code ?? String(error)}`);
    if (typeof entries === 'string') return entries;
    for (const entry of entries) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else if (entry.isBlockDevice() || entry.isCharacterDevice()) return `${path} is a device node`;
      else if (entry.isFIFO()) return `${path} is a FIFO`;
      else if (entry.isSocket()) return `${path} is a socket`;
    }
  }
  return undefined;
}
