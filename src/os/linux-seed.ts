/** NoCloud seeds of the Linux families: what the build VM is told, and what the cluster hands each VM. */
import { readFile } from 'node:fs/promises';
import type { SeedFiles } from '../cloudinit/seed.ts';
import { composeBuildUserData, metaData } from '../cloudinit/userdata.ts';
import type { CloudConfig } from '../cloudinit/yaml.ts';
import { vrdmaBuildConfig } from './vrdma.ts';
import { renderCloudConfig } from '../cloudinit/yaml.ts';
import type { Profile } from '../profile/schema.ts';
import type { OsDriver } from '../stages/driver.ts';

/** The build VM's cloud-config: the generic part, with what this family adds. */
export async function buildUserData(profile: Profile, driver: OsDriver, nonce: string): Promise<CloudConfig> {
  return composeBuildUserData(profile, {
    datasourceFile: driver.datasourceFile,
    buildOnly: (await driver.buildOnlyFiles?.(profile)) ?? [],
    configs: [driver.buildConfig(profile), await vrdmaBuildConfig(profile, driver)],
  }, nonce);
}

export async function linuxBuildSeed(profile: Profile, driver: OsDriver, nonce: string): Promise<SeedFiles> {
  return { userData: renderCloudConfig(await buildUserData(profile, driver, nonce)), metaData: metaData(profile, nonce) };
}

/** The profile's own user-data (cloudInit.userData), as the cluster would pass it to each VM. */
export async function profileUserData(profile: Profile): Promise<string> {
  const extra = profile.cloudInit.userData;
  if (extra === undefined) return '#cloud-config\n{}\n';
  if (typeof extra === 'string') return readFile(extra, 'utf8');
  return renderCloudConfig(extra);
}

export async function linuxClusterSeed(profile: Profile, nonce: string): Promise<SeedFiles> {
  return { userData: await profileUserData(profile), metaData: metaData(profile, nonce) };
}
