/**
 * Host files a profile names stay in the folder of the profile file that
 * names them, by real path: profiles come from elsewhere and guestforge runs
 * as root, so `apps[].src: /etc/shadow`, `extends: /root/x.yaml` or a link in
 * the folder pointing at /etc must not reach the image or a message. Each
 * field is resolved from its file's folder, its links resolved, and the real
 * path is what the build then reads. An admin allows more with
 * --allow-host-path DIR.
 */
import { readlink, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isUnder } from '../policy/paths.ts';
import type { Diagnostic } from './diagnostic.ts';
import type { FieldPath, Locations } from './source.ts';

/** Every profile field that names a host file ('*': each item of a list). */
export const hostPathFields = [
  ['extends'],
  ['base', 'image', 'path'],
  ['base', 'builder', 'path'],
  ['apps', '*', 'src'],
  ['cloudInit', 'userData'],
] as const;

export const allowHostPathHint = 'a profile reads host files only from its own folder (links resolved); to allow a folder outside it, run with --allow-host-path DIR';

interface HostPath {
  path: FieldPath;
  value: string;
  set(value: string): void;
}

/** The host paths one file's data names: non-empty strings at hostPathFields (anything else is the schema's to refuse). */
export function hostPathsIn(data: unknown): HostPath[] {
  const found: HostPath[] = [];
  const walk = (node: unknown, rest: readonly string[], path: FieldPath) => {
    if (typeof node !== 'object' || node === null) return;
    const [part, ...more] = rest as [string, ...string[]];
    const keys = part === '*' ? (Array.isArray(node) ? node.map((_, i) => i) : []) : Array.isArray(node) ? [] : [part];
    for (const key of keys) {
      const holder = node as Record<string | number, unknown>;
      const value = holder[key];
      if (more.length > 0) walk(value, more, [...path, key]);
      else if (typeof value === 'string' && value !== '') found.push({ path: [...path, key], value, set: (v) => (holder[key] = v) });
    }
  };
  for (const field of hostPathFields) walk(data, field, []);
  return found;
}

/**
 * The real path of `path`, its links resolved, also when it or its end does
 * not exist (a missing file is judged by where it would be); undefined for a
 * loop of links.
 */
export async function realPathOf(path: string, hops = 0): Promise<string | undefined> {
  const absolute = resolve(path);
  const real = await realpath(absolute).catch(() => undefined);
  if (real !== undefined) return real;
  if (hops > 40) return undefined;
  const target = await readlink(absolute).catch(() => undefined);
  if (target !== undefined) return realPathOf(resolve(dirname(absolute), target), hops + 1);
  const parent = dirname(absolute);
  if (parent === absolute) return absolute;
  const realParent = await realPathOf(parent, hops);
  return realParent === undefined ? undefined : join(realParent, basename(absolute));
}

/**
 * Resolves the host paths in one file's data (`dir`: the file's real folder)
 * to real paths, in place; those outside `dir` and the `allowed` real folders
 * are left as written and come back as diagnostics, located in that file.
 */
export async function confineHostPaths(data: unknown, dir: string, allowed: readonly string[], locations: Locations): Promise<Diagnostic[]> {
  const refused: Diagnostic[] = [];
  for (const field of hostPathsIn(data)) {
    const real = await realPathOf(resolve(dir, field.value));
    const refuse = (message: string) => refused.push({ location: locations.find(field.path)!, path: field.path, message, hint: allowHostPathHint });
    if (real === undefined) refuse(`${field.value}: its links loop`);
    else if ([dir, ...allowed].some((root) => isUnder(real, root))) field.set(real);
    else refuse(`${field.value}${real === resolve(dir, field.value) ? '' : ` (really ${real})`} is outside ${dir}, the folder of the profile that names it`);
  }
  return refused;
}
