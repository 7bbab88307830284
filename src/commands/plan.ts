import { redactCloudConfig, redactUserData } from '../cloudinit/yaml.ts';
import { redactUrl } from '../util/url.ts';
import { UsageError } from '../errors.ts';
import { metaData, secretFilePaths } from '../cloudinit/userdata.ts';
import { driverFor } from '../os/index.ts';
import { loadProfileOrThrow } from '../loader/index.ts';
import { allowHostPathOption, loadOptionsOf, parseCommandArgs } from './args.ts';
import { StageChain } from '../cache/chain.ts';
import { StageCache } from '../cache/store.ts';
import type { StageName } from '../model/stage.ts';
import type { Profile } from '../profile/schema.ts';
import type { Stage } from '../stages/types.ts';
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
 * What a build would take from the stage cache, decided by the build's own
 * chain walk in read-only mode: a broken entry is reported, never removed.
 */
export async function cachePlan(profile: Profile, stages: readonly Stage[], noCache = false): Promise<CacheLine[]> {
  const driver = driverFor(profile.os.family);
  const chain = new StageChain({
    ...(noCache ? {} : { cache: new StageCache(cacheDir()) }),
    version: await guestforgeVersion(),
    readOnly: true,
    stageNames: stages.map((s) => s.name),
  });
  const lines: CacheLine[] = [];
  for (const stage of stages) {
    const { name } = stage;
    const d = await chain.decide(stage, { profile, driver });
    if (d.kind === 'hit') {
      chain.advanceTo(d.key, d.entry);
      lines.push({ stage: name, cache: 'hit', why: `made ${d.entry.created} for ${d.entry.profile}`, entry: d.entry.path });
    } else if (d.kind === 'miss') {
      chain.markWillRun();
      lines.push({ stage: name, cache: 'miss', why: d.why });
    } else {
      chain.advanceUncached(stage, { profile, driver });
      lines.push({ stage: name, cache: noCache && stage.cache ? 'miss' : 'runs', why: d.why });
    }
  }
  return lines;
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('plan', args, { json: { type: 'boolean' }, 'no-cache': { type: 'boolean' }, ...allowHostPathOption });
  const [file] = positionals;
  if (!file || positionals.length > 1) throw new UsageError('plan: name one profile', { hint: 'guestforge plan profiles/debian-12-hpc.yaml' });
  const { profile, files } = await loadProfileOrThrow(file, loadOptionsOf(values));
  const driver = driverFor(profile.os.family);
  const planned = driver.plan(profile);
  const stages = planned.map((s) => s.name);
  const nonce = 'PLAN';
  const seed = await driver.buildSeed(profile, nonce);
  const userData = seed?.userData === undefined ? undefined : redactUserData(seed.userData, await secretFilePaths(profile, (await driver.buildOnlyFiles?.(profile)) ?? []));
  const meta = seed?.metaData ?? metaData(profile, nonce);
  const cache = await cachePlan(profile, planned, Boolean(values['no-cache']));
  // Shown, not used: hashes and keys as <redacted> (plan output lands in CI logs).
  const { image, builder, bootstrap } = profile.base;
  const base = {
    ...profile.base,
    ...(image?.url ? { image: { ...image, url: redactUrl(image.url) } } : {}),
    ...(builder?.url ? { builder: { ...builder, url: redactUrl(builder.url) } } : {}),
    ...(bootstrap && bootstrap.mirror !== 'auto' ? { bootstrap: { ...bootstrap, mirror: redactUrl(bootstrap.mirror) } } : {}),
  };
  const extra = profile.cloudInit.userData;
  const shown = { ...profile, cloudInit: { ...profile.cloudInit, ...(typeof extra === 'object' ? { userData: redactCloudConfig(extra) } : {}) }, base, users: profile.users.map((u) => ({ ...u, ...(u.passwordHash ? { passwordHash: '<redacted>' } : {}), sshKeys: u.sshKeys.map(() => '<redacted>') })) };
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ files, stages, cache, profile: shown, seed: { userData, metaData: meta } }, null, 2)}\n`);
    return 0;
  }
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(`profile: ${files.join(' <- ')}`);
  out(`stages: ${stages.join(' → ')}`);
  if (seed) out(`VMs run by: ${describeBackend(backendOf(profile.build))}`);
  for (const stage of planned) {
    out(`  ${stage.name.padEnd(10)} ${stage.describe(profile, driver)}`);
  }
  out(`stage cache (${cacheDir()}/stages):`);
  for (const c of cache) out(`  ${c.stage.padEnd(10)} ${c.cache.padEnd(5)} ${c.entry ? `${c.entry} (${c.why})` : c.why}`);
  out('--- resolved profile');
  out(JSON.stringify(shown, null, 2));
  out('--- meta-data (the instance-id is fresh per build)');
  process.stdout.write(meta);
  if (userData) {
    out('--- user-data');
    process.stdout.write(userData);
  }
  return 0;
}
