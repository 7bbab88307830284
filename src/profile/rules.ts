/**
 * Cross-field checks that the schema cannot express, run after parsing.
 * Each returns problems with the field path they concern.
 */
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { run } from '../exec/run.ts';
import type { Profile } from './schema.ts';
import type { Problem } from './problem.ts';
import { layoutProblems } from '../policy/layout.ts';
import { driverFor } from '../os/index.ts';
import { formatSize, parseSize } from './units.ts';

export type { Problem } from './problem.ts';

/** Smallest disk a bootstrapped Debian guest fits in, with room for packages. */
export const minBootstrapDisk = 2 * 1024 ** 3;

function checkGuestPath(path: string, where: (string | number)[], problems: Problem[]): boolean {
  if (!posix.isAbsolute(path)) {
    problems.push({ path: where, message: `must be an absolute path in the guest, got "${path}"` });
    return false;
  }
  if (path.split('/').includes('..')) {
    problems.push({ path: where, message: `must not contain "..": "${path}"` });
    return false;
  }
  return true;
}

async function imageVirtualSize(path: string): Promise<number | undefined> {
  const result = await run(['qemu-img', 'info', '--output=json', path], { allowFailure: true, timeoutMs: 30_000 });
  if (result.exitCode !== 0) return undefined;
  return (JSON.parse(result.stdout) as { 'virtual-size'?: number })['virtual-size'];
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

  for (const [key, value] of [['workspace', layout.workspace], ['optVm', layout.optVm], ['home', layout.home]] as const) {
    checkGuestPath(value, ['layout', key], problems);
  }
  const dests: string[] = [];
  for (const [index, app] of profile.apps.entries()) {
    if (checkGuestPath(app.dest, ['apps', index, 'dest'], problems)) dests.push(app.dest);
    else dests.push('');
    try {
      await stat(app.src);
    } catch {
      problems.push({ path: ['apps', index, 'src'], message: `no such file or directory: ${app.src}` });
    }
  }
  for (const problem of driver.clusterLayout ? layoutProblems(layout, dests) : []) problems.push(problem);

  const seenUsers = new Map<string, number>();
  for (const [index, user] of profile.users.entries()) {
    if (seenUsers.has(user.name)) {
      problems.push({ path: ['users', index, 'name'], message: `user "${user.name}" is listed twice` });
    }
    seenUsers.set(user.name, index);
  }

  const diskBytes = parseSize(profile.disk.size);
  if (profile.base.bootstrap && diskBytes < minBootstrapDisk) {
    problems.push({ path: ['disk', 'size'], message: `${profile.disk.size} is too small for a bootstrapped guest`, hint: `use at least ${formatSize(minBootstrapDisk)}` });
  }
  const image = profile.base.image;
  if (image?.path) {
    const exists = await stat(image.path).then(() => true, () => false);
    const needed = exists ? await imageVirtualSize(image.path).catch(() => undefined) : undefined;
    if (!exists) {
      problems.push({ path: ['base', 'image', 'path'], message: `no such file: ${image.path}` });
    } else if (needed !== undefined && needed > diskBytes) {
        problems.push({
          path: ['disk', 'size'],
          message: `${profile.disk.size} is smaller than the base image (${formatSize(needed)})`,
          hint: `use at least ${Math.ceil(needed / 1024 ** 3)}G`,
        });
    }
  }
  return problems;
}
