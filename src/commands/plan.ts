import { UsageError } from '../errors.ts';
import { buildUserData, metaData } from '../cloudinit/userdata.ts';
import { renderCloudConfig } from '../cloudinit/yaml.ts';
import { driverFor } from '../os/index.ts';
import { loadProfileOrThrow } from '../profile/index.ts';
import { parseCommandArgs } from './args.ts';
import { stages as registry } from '../stages/index.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('plan', args, { json: { type: 'boolean' } });
  const [file] = positionals;
  if (!file || positionals.length > 1) throw new UsageError('plan: name one profile', { hint: 'guestforge plan profiles/debian-12-hpc.yaml' });
  const { profile, files } = await loadProfileOrThrow(file);
  const driver = driverFor(profile.os.family);
  const stages = driver.stages(profile);
  const nonce = 'PLAN';
  const userData = profile.os.family === 'osv' ? undefined : renderCloudConfig(await buildUserData(profile, driver, nonce));
  const meta = metaData(profile, nonce);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ files, stages, profile, seed: { userData, metaData: meta } }, null, 2)}\n`);
    return 0;
  }
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(`profile: ${files.join(' <- ')}`);
  out(`stages: ${stages.join(' → ')}`);
  for (const name of stages) {
    const stage = registry[name];
    out(`  ${name.padEnd(10)} ${stage ? stage.describe(profile) : '(not available in this guestforge yet)'}`);
  }
  out('--- resolved profile');
  out(JSON.stringify(profile, null, 2));
  out('--- meta-data (the instance-id is fresh per build)');
  process.stdout.write(meta);
  if (userData) {
    out('--- user-data');
    process.stdout.write(userData);
  }
  return 0;
}
