import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSeedIso } from '../cloudinit/seed.ts';
import { driverFor } from '../os/index.ts';
import { ExitCode, UsageError } from '../errors.ts';
import { loadProfileOrThrow } from '../loader/index.ts';
import { nonce, tempPathFor } from '../util/fs.ts';
import { allowHostPathOption, loadOptionsOf, parseCommandArgs } from './args.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('seed', args, { output: { type: 'string', short: 'o' }, ...allowHostPathOption });
  const [file] = positionals;
  if (!file || positionals.length > 1 || !values.output) throw new UsageError('seed: name one profile and -o', { hint: 'guestforge seed profiles/osv-hello.yaml -o seed.iso' });
  const { profile } = await loadProfileOrThrow(file, loadOptionsOf(values));
  const target = resolve(values.output);
  const dir = await mkdtemp(join(tmpdir(), 'guestforge-seed-'));
  const temp = tempPathFor(target);
  try {
    await buildSeedIso(dir, await driverFor(profile.os.family).clusterSeed(profile, nonce(6)), temp);
    await rename(temp, target);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(temp, { force: true });
  }
  process.stdout.write(`${target}\n`);
  return ExitCode.ok;
}
