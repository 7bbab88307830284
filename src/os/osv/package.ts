/**
 * A Capstan package from an OSv profile (Capstan's documented layout):
 * meta/package.yaml, meta/run.yaml, a Capstanfile, and the app files at
 * the paths they take in the image. Users who run capstan themselves stop
 * here (`build --package-only`).
 */
import { chmod, cp, lstat, mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { UserError } from '../../errors.ts';
import { renderYaml11 } from '../../cloudinit/yaml.ts';
import type { OsOf, Profile } from '../../profile/schema.ts';
import { tempPathFor, writeFileAtomic } from '../../util/fs.ts';

type OsvOs = OsOf<'osv'>;

function osvOf(profile: Profile): OsvOs {
  if (profile.os.family !== 'osv') throw new Error(`not an OSv profile: ${profile.name}`);
  return profile.os;
}

/** The runtime's base package, as Capstan's package registry names them. */
export const runtimePackages: Record<OsvOs['runtime'], string[]> = {
  native: [],
  java: ['osv.openjdk10-java-base'],
  node: ['osv.node-js'],
  python: ['osv.python3x'],
};

export function packageYaml(profile: Profile): Record<string, unknown> {
  const os = osvOf(profile);
  return {
    name: profile.name,
    title: profile.description ?? profile.name,
    author: os.author,
    version: os.version,
    require: runtimePackages[os.runtime],
  };
}

/** meta/run.yaml: one config set, "default", in the fields of its runtime. */
export function runYaml(profile: Profile): Record<string, unknown> {
  const os = osvOf(profile);
  const set: Record<string, unknown> = {};
  if (os.bootcmd) {
    set.bootcmd = os.bootcmd;
  } else if (os.runtime === 'native') {
    set.bootcmd = os.cmdline;
  } else {
    const [main = '', ...args] = (os.cmdline ?? '').split(/\s+/).filter(Boolean);
    set.main = main;
    if (args.length > 0) set.args = args;
  }
  if (Object.keys(os.env).length > 0) set.env = os.env;
  return { runtime: os.runtime, config_set: { default: set }, config_set_default: 'default' };
}

/** The command line OSv runs at boot (what `capstan` would set). */
export function bootCommand(profile: Profile): string {
  const os = osvOf(profile);
  const env = Object.entries(os.env).map(([k, v]) => `--env=${k}=${v}`).join(' ');
  let command: string;
  if (os.bootcmd) command = os.bootcmd;
  else if (os.runtime === 'native') command = os.cmdline ?? '';
  else if (os.runtime === 'node') command = `/node ${os.cmdline ?? ''}`;
  else if (os.runtime === 'python') command = `/python ${os.cmdline ?? ''}`;
  else command = `/java.so -jar ${os.cmdline ?? ''}`;
  return [env, command.trim()].filter(Boolean).join(' ');
}

export function capstanfile(profile: Profile): Record<string, unknown> {
  return {
    base: `cloudius/osv-${osvOf(profile).runtime === 'native' ? 'base' : osvOf(profile).runtime}`,
    cmdline: bootCommand(profile),
    files: Object.fromEntries(profile.apps.map((app) => [app.dest, `.${app.dest}`])),
  };
}

export function packageDir(outDir: string, profile: Profile): string {
  return join(outDir, profile.name);
}

/** Is `dir` a package folder this code wrote (so replacing it deletes nothing else)? */
async function isPackageDir(dir: string): Promise<boolean> {
  const st = await lstat(dir).catch(() => undefined);
  if (!st) return true; // nothing there
  if (!st.isDirectory()) return false;
  return (await lstat(join(dir, 'meta', 'package.yaml')).then((m) => m.isFile(), () => false))
    && (await lstat(join(dir, 'Capstanfile')).then((m) => m.isFile(), () => false));
}

/** Make the folders down to `target`'s parent inside `root`, refusing any symlink on the way. */
async function safeParents(root: string, target: string, dest: string): Promise<void> {
  const parts = relative(root, dirname(target)).split(sep).filter(Boolean);
  let at = root;
  for (const part of parts) {
    at = join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (st?.isSymbolicLink()) throw new UserError(`app ${dest}: ${relative(root, at)} is a symlink another app brought`, { hint: 'an app is never written through a link: give it a dest of its own' });
    if (st && !st.isDirectory()) throw new UserError(`app ${dest}: ${relative(root, at)} is a file another app brought`);
    if (!st) await mkdir(at);
  }
  if (await lstat(target).then(() => true, () => false)) throw new UserError(`app ${dest} collides with another app's files`);
}

/**
 * Writes the package folder afresh (into a temp name, renamed at the end);
 * returns its path. A folder of that name that is not an earlier package
 * (out/logs, an image) is left alone and refused.
 */
export async function writePackage(profile: Profile, outDir: string): Promise<string> {
  const dir = packageDir(outDir, profile);
  if (!(await isPackageDir(dir))) {
    throw new UserError(`${dir} exists and is not a Capstan package guestforge wrote: not replacing it`, { hint: 'rename the profile, or use another -o folder' });
  }
  const temp = tempPathFor(dir);
  try {
    await mkdir(join(temp, 'meta'), { recursive: true });
    await writeFileAtomic(join(temp, 'meta', 'package.yaml'), renderYaml11(packageYaml(profile)));
    await writeFileAtomic(join(temp, 'meta', 'run.yaml'), renderYaml11(runYaml(profile)));
    await writeFileAtomic(join(temp, 'Capstanfile'), renderYaml11(capstanfile(profile)));
    for (const app of profile.apps) {
      const target = join(temp, app.dest);
      await safeParents(temp, target, app.dest);
      // Links are copied as written, never followed, never resolved to host paths.
      await cp(app.src, target, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true, dereference: false });
      if (app.mode && (await lstat(target)).isFile()) await chmod(target, parseInt(app.mode, 8));
    }
    await rm(dir, { recursive: true, force: true });
    await rename(temp, dir);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
  return dir;
}
