import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSeedIso } from '../cloudinit/seed.ts';
import { metaData } from '../cloudinit/userdata.ts';
import { renderCloudConfig } from '../cloudinit/yaml.ts';
import { ExitCode, UsageError } from '../errors.ts';
import { loadProfileOrThrow } from '../profile/index.ts';
import type { Profile } from '../profile/schema.ts';
import { nonce, tempPathFor } from '../util/fs.ts';
import { parseCommandArgs } from './args.ts';

/** The profile's own user-data (cloudInit.userData), as the cluster would pass it to each VM. */
async function userDataOf(profile: Profile): Promise<string> {
  const extra = profile.cloudInit.userData;
  if (extra === undefined) return '#cloud-config\n{}\n';
  if (typeof extra === 'string') return readFile(extra, 'utf8');
  return renderCloudConfig(extra);
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('seed', args, { output: { type: 'string', short: 'o' } });
  const [file] = positionals;
  if (!file || positionals.length > 1 || !values.output) throw new UsageError('seed: name one profile and -o', { hint: 'guestforge seed profiles/osv-hello.yaml -o seed.iso' });
  const { profile } = await loadProfileOrThrow(file);
  const target = resolve(values.output);
  const dir = await mkdtemp(join(tmpdir(), 'guestforge-seed-'));
  const temp = tempPathFor(target);
  try {
    const userData = await userDataOf(profile);
    // OSv's cloud-init reads user-data only, from a second disk; Linux guests get NoCloud's pair.
    const files = profile.os.family === 'osv' ? { userData } : { userData, metaData: metaData(profile, nonce(6)) };
    await buildSeedIso(dir, files, temp);
    await rename(temp, target);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(temp, { force: true });
  }
  process.stdout.write(`${target}\n`);
  return ExitCode.ok;
}
