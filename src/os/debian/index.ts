import type { Profile } from '../../profile/schema.ts';
import { linuxBuildSeed, linuxClusterSeed } from '../linux-seed.ts';
import type { CloudConfig } from '../../cloudinit/yaml.ts';
import type { OsDriver } from '../../stages/driver.ts';
import { linuxPlan } from '../../stages/index.ts';
import type { Problem } from '../../model/problem.ts';
import { debianReleases } from '../../host/apt-sources.ts';
import { appsVolumeOf, diskLayoutOf, bootstrapDebian, bootstrapKey, mirrorAuthFiles } from './bootstrap.ts';

export const debian: OsDriver = {
  family: 'debian',
  title: 'Debian',
  plan: () => linuxPlan,
  guest: { family: 'debian', osReleaseIds: ['debian', 'ubuntu'], verbsPackages: ['rdma-core', 'ibverbs-providers'] },
  vrdmaPackages: ['rdma-core', 'ibverbs-providers', 'ibverbs-utils', 'rdmacm-utils', 'infiniband-diags', 'perftest'],
  // The cloud kernel has no rdma_rxe; the generic one does. Removing the
  // running kernel asks a debconf question whose default aborts: answer it.
  vrdmaKernel: {
    install: 'DEBIAN_FRONTEND=noninteractive apt-get install -y linux-image-amd64',
    remove: [
      "echo 'linux-base linux-base/removing-running-kernel boolean false' | debconf-set-selections",
      'DEBIAN_FRONTEND=noninteractive apt-get purge -y "linux-image-$1" linux-image-cloud-amd64',
      'update-grub',
    ].join(' && '),
  },
  buildConfig(profile: Profile): CloudConfig {
    // One network stack: networkd (ifupdown would run a second DHCP client). A bootstrapped base
    // says so in its cloud.cfg.d (customize.sh); user-data's system_info is deprecated from
    // cloud-init 24.2 (trixie's 25.1 ends 'degraded' on it), so only an imported base gets it here.
    return profile.base.bootstrap ? {} : { system_info: { network: { renderers: ['networkd'] } } };
  },
  // The base names its mirror without credentials: the build VM's apt gets them in an auth file.
  buildOnlyFiles: mirrorAuthFiles,
  appsVolume: appsVolumeOf,
  diskLayout: diskLayoutOf,
  offlineFixups: async () => [],
  datasourceFile: '/etc/cloud/cloud.cfg.d/90_guestforge_datasource.cfg',
  clusterLayout: true,
  checkProfile(profile: Profile): Problem[] {
    // os.release and the suite say the same release, or the image is not what its manifest claims.
    const suite = profile.base.bootstrap?.suite;
    const release = suite ? debianReleases[suite] : undefined;
    if (!release || profile.os.release === release) return [];
    return [{ path: ['os', 'release'], message: `"${profile.os.release}" is not the release of suite ${suite} (Debian ${release})`, hint: `os.release: "${release}", or the suite of release ${profile.os.release}` }];
  },
  bootstrap: bootstrapDebian,
  bootstrapKey: (profile: Profile) => bootstrapKey(profile),
  buildSeed(profile: Profile, nonce: string) {
    return linuxBuildSeed(profile, debian, nonce);
  },
  clusterSeed: linuxClusterSeed,
};
