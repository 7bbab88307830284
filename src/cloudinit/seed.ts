/** NoCloud seed ISO: volume label cidata, user-data and meta-data at its root. */
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec/run.ts';

/**
 * A file the build VM needs and the image must not keep (a mirror's apt
 * credentials): the seed writes it owner-only, the build VM's last command
 * removes it, and logs and `plan` show its content as <redacted>.
 */
export interface BuildOnlyFile {
  path: string;
  content: string;
}

export interface SeedFiles {
  userData: string;
  /** Absent for OSv, whose cloud-init reads user-data only. */
  metaData?: string;
  networkConfig?: string;
  /**
   * More files at the ISO's root, which cloud-init does not read: the build
   * VM's debug access (`--on-error keep`), read by report.sh only after a
   * failure, so it never reaches a disk that succeeds.
   */
  extra?: Record<string, string>;
}

export async function buildSeedIso(dir: string, files: SeedFiles, iso: string): Promise<void> {
  // user-data holds keys, hashes and commands: owner-only files, folder and ISO.
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const names = ['user-data'];
  await writeFile(join(dir, 'user-data'), files.userData, { mode: 0o600 });
  if (files.metaData !== undefined) {
    await writeFile(join(dir, 'meta-data'), files.metaData, { mode: 0o600 });
    names.push('meta-data');
  }
  if (files.networkConfig !== undefined) {
    await writeFile(join(dir, 'network-config'), files.networkConfig, { mode: 0o600 });
    names.push('network-config');
  }
  for (const [name, content] of Object.entries(files.extra ?? {})) {
    if (!/^guestforge-[a-z-]+$/.test(name)) throw new Error(`seed: bad extra file name ${name}`);
    await writeFile(join(dir, name), content, { mode: 0o600 });
    names.push(name);
  }
  await rm(iso, { force: true }); // a resumed build makes its seed again in the same folder
  await run(['xorriso', '-as', 'mkisofs', '-quiet', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', ...names], { cwd: dir, timeoutMs: 60_000 });
  await chmod(iso, 0o600);
}
