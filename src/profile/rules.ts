/**
 * Cross-field checks that the schema cannot express, run after parsing.
 * Each returns problems with the field path they concern.
 */
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { run } from '../exec/run.ts';
import type { Profile } from './schema.ts';
import { formatSize, parseSize } from './units.ts';

export interface Problem {
  path: (string | number)[];
  message: string;
  hint?: string;
}

/** Smallest disk a bootstrapped Debian guest fits in, with room for packages. */
export const minBootstrapDisk = 2 * 1024 ** 3;

function isUnder(path: string, dir: string): boolean {
  const p = posix.normalize(path);
  return p === dir || p.startsWith(`${dir.replace(/\/$/, '')}/`);
}

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

  if (profile.base.bootstrap && family !== 'debian') {
    problems.push({
      path: ['base', 'bootstrap'],
      message: `bootstrap is only for Debian guests, not ${family}`,
      hint: 'use base.image with a vendor cloud image and its sha256',
    });
  }
  if (family === 'osv') {
    if (profile.vrdma.enabled) problems.push({ path: ['vrdma', 'enabled'], message: 'vRDMA is not available for OSv guests' });
    for (const field of ['packages', 'users', 'commands'] as const) {
      if (profile[field].length > 0) {
        problems.push({ path: [field], message: `OSv guests have no ${field}: an OSv image holds one app`, hint: 'put the app\'s files under apps' });
      }
    }
    if (!profile.os.cmdline && !profile.os.bootcmd) {
      problems.push({ path: ['os'], message: 'an OSv guest needs os.cmdline or os.bootcmd', hint: 'e.g. cmdline: /hello' });
    }
  }

  for (const [key, value] of [['workspace', layout.workspace], ['optVm', layout.optVm], ['home', layout.home]] as const) {
    checkGuestPath(value, ['layout', key], problems);
  }
  if (isUnder(layout.optVm, '/opt')) {
    problems.push({ path: ['layout', 'optVm'], message: 'must not be under /opt: the cluster mounts its own /opt over it', hint: 'use /opt-vm' });
  }
  if (isUnder(layout.workspace, '/opt')) {
    problems.push({ path: ['layout', 'workspace'], message: 'must not be under /opt: the cluster mounts its own /opt' });
  }

  for (const [index, app] of profile.apps.entries()) {
    const where = ['apps', index, 'dest'];
    if (checkGuestPath(app.dest, where, problems) && family !== 'osv' && isUnder(app.dest, '/opt')) {
      problems.push({
        path: where,
        message: `"${app.dest}" is under /opt, which the cluster mounts over at boot`,
        hint: `install apps under ${layout.optVm} (e.g. ${posix.join(layout.optVm, posix.basename(app.dest))})`,
      });
    }
    try {
      await stat(app.src);
    } catch {
      problems.push({ path: ['apps', index, 'src'], message: `no such file or directory: ${app.src}` });
    }
  }

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
