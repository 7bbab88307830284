/**
 * A Capstan package from an OSv profile (Capstan's documented layout):
 * meta/package.yaml, meta/run.yaml, a Capstanfile, and the app files at
 * the paths they take in the image. Users who run capstan themselves stop
 * here (`build --package-only`).
 */
import { cp, mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { renderYaml11 } from '../../cloudinit/yaml.ts';
import type { OsOf, Profile } from '../../profile/schema.ts';
import { writeFileAtomic } from '../../util/fs.ts';

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

/** Writes the package folder afresh; returns its path. */
export async function writePackage(profile: Profile, outDir: string): Promise<string> {
  const dir = packageDir(outDir, profile);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'meta'), { recursive: true });
  await writeFileAtomic(join(dir, 'meta', 'package.yaml'), renderYaml11(packageYaml(profile)));
  await writeFileAtomic(join(dir, 'meta', 'run.yaml'), renderYaml11(runYaml(profile)));
  await writeFileAtomic(join(dir, 'Capstanfile'), renderYaml11(capstanfile(profile)));
  for (const app of profile.apps) {
    const target = join(dir, app.dest);
    await mkdir(join(target, '..'), { recursive: true });
    await cp(app.src, target, { recursive: true, preserveTimestamps: true });
    if (app.mode && !(await stat(target)).isDirectory()) {
      const { chmod } = await import('node:fs/promises');
      await chmod(target, parseInt(app.mode, 8));
    }
  }
  return dir;
}
