/** NoCloud seed ISO: volume label cidata, user-data and meta-data at its root. */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec/run.ts';

export interface SeedFiles {
  userData: string;
  /** Absent for OSv, whose cloud-init reads user-data only. */
  metaData?: string;
  networkConfig?: string;
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
  await run(['xorriso', '-as', 'mkisofs', '-quiet', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', ...names], { cwd: dir, timeoutMs: 60_000 });
  await chmod(iso, 0o600);
}
