import { UsageError } from '../errors.ts';
import { buildUserData, metaData } from '../cloudinit/userdata.ts';
import { renderCloudConfig } from '../cloudinit/yaml.ts';
import { driverFor } from '../os/index.ts';
import { loadProfileOrThrow } from '../profile/index.ts';
import { parseCommandArgs } from './args.ts';
import { stages as registry } from '../stages/index.ts';
import { decide } from '../cache/decide.ts';
import { StageCache, type ChainNode } from '../cache/store.ts';
import type { StageName } from '../os/types.ts';
import type { Profile } from '../profile/schema.ts';
import { cacheDir } from '../util/paths.ts';
import { guestforgeVersion } from '../util/project.ts';
import { backendOf, describeBackend } from '../vm/backend.ts';

export interface CacheLine {
  stage: StageName;
  cache: 'hit' | 'miss' | 'runs';
  why: string;
  entry?: string;
}

/**
 * What a build would take from the stage cache, decided exactly as the build
 * decides: a miss makes every cached stage after it a miss too.
 */
export async function cachePlan(profile: Profile, stages: StageName[], noCache = false): Promise<CacheLine[]> {
  const cache = new StageCache(cacheDir());
  const driver = driverFor(profile.os.family);
  const version = await guestforgeVersion();
  const lines: CacheLine[] = [];
  let parent: ChainNode | undefined;
  let startsFromDisk = false;
  let rebuilt = false;
  for (const name of stages) {
    const stage = registry[name];
    if (!stage?.cache) {
      lines.push({ stage: name, cache: 'runs', why: 'runs on every build' });
      continue;
    }
    if (noCache) {
      lines.push({ stage: name, cache: 'miss', why: '--no-cache' });
      continue;
    }
    if (rebuilt) {
      lines.push({ stage: name, cache: 'miss', why: 'the stage before it will run' });
      continue;
    }
    const d = await decide(cache, stage, { profile, driver }, { ...(parent ? { parent } : {}), startsFromDisk }, version);
    startsFromDisk = true;
    if (d.kind === 'hit') {
      parent = { key: d.key, id: d.entry.id };
      lines.push({ stage: name, cache: 'hit', why: `made ${d.entry.created} for ${d.entry.profile}`, entry: d.entry.path });
    } else if (d.kind === 'miss') {
      rebuilt = true;
      lines.push({ stage: name, cache: 'miss', why: d.why });
    } else {
      parent = stage.cache.identity?.({ profile, driver });
      if (!parent) rebuilt = true;
      lines.push({ stage: name, cache: 'runs', why: d.why });
    }
  }
  return lines;
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('plan', args, { json: { type: 'boolean' }, 'no-cache': { type: 'boolean' } });
  const [file] = positionals;
  if (!file || positionals.length > 1) throw new UsageError('plan: name one profile', { hint: 'guestforge plan profiles/debian-12-hpc.yaml' });
  const { profile, files } = await loadProfileOrThrow(file);
  const driver = driverFor(profile.os.family);
  const stages = driver.stages(profile);
  const nonce = 'PLAN';
  const userData = profile.os.family === 'osv' ? undefined : renderCloudConfig(await buildUserData(profile, driver, nonce));
  const meta = metaData(profile, nonce);
  const cache = await cachePlan(profile, stages, Boolean(values['no-cache']));
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ files, stages, cache, profile, seed: { userData, metaData: meta } }, null, 2)}\n`);
    return 0;
  }
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(`profile: ${files.join(' <- ')}`);
  out(`stages: ${stages.join(' → ')}`);
  if (profile.os.family !== 'osv') out(`VMs run by: ${describeBackend(backendOf(profile.build))}`);
  for (const name of stages) {
    const stage = registry[name];
    out(`  ${name.padEnd(10)} ${stage ? stage.describe(profile) : '(not available in this guestforge yet)'}`);
  }
  out(`stage cache (${cacheDir()}/stages):`);
  for (const c of cache) out(`  ${c.stage.padEnd(10)} ${c.cache.padEnd(5)} ${c.entry ? `${c.entry} (${c.why})` : c.why}`);
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
