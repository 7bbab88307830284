import type { Profile } from '../profile/schema.ts';
import type { CloudConfig, OsDriver } from './types.ts';

export const debian = {
  family: 'debian',
  title: 'Debian',
  stages: () => ['base', 'provision', 'inject', 'verify', 'finalize', 'smoke'],
  vrdmaPackages: ['rdma-core', 'ibverbs-providers', 'ibverbs-utils', 'rdmacm-utils', 'infiniband-diags', 'perftest'],
  buildConfig(profile: Profile): CloudConfig {
    const config: CloudConfig = {};
    // One network stack: networkd. ifupdown would run a second DHCP client.
    config.system_info = { network: { renderers: ['networkd'] } };
    if (profile.os.family === 'debian' && profile.vrdma.enabled && profile.os.kernel === 'cloud' && profile.vrdma.installKernel) {
      // The cloud kernel has no rdma_rxe; the generic one does.
      config.packages = ['linux-image-amd64'];
    }
    return config;
  },
  packageQuery: "dpkg-query -W -f '${Package} ${Version}\\n'",
  offlineFixups: () => [],
  datasourceFile: '/etc/cloud/cloud.cfg.d/90_guestforge_datasource.cfg',
} as const satisfies OsDriver;
