import type { Profile } from '../profile/schema.ts';
import type { CloudConfig, OsDriver } from './types.ts';

export const redhat = {
  family: 'redhat',
  title: 'RedHat family',
  stages: () => ['base', 'provision', 'inject', 'verify', 'finalize', 'smoke'],
  vrdmaPackages: ['rdma-core', 'libibverbs', 'libibverbs-utils', 'librdmacm-utils', 'infiniband-diags', 'perftest'],
  buildConfig(_profile: Profile): CloudConfig {
    // dnf is cloud-init's package manager here; nothing else differs at build time.
    return {};
  },
  packageQuery: "rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE}\\n'",
  offlineFixups(profile: Profile): string[][] {
    if (profile.os.family !== 'redhat' || profile.os.selinux === 'keep') return [];
    // Files written offline have no SELinux labels: relabel at next boot.
    return [['touch', '/.autorelabel']];
  },
  datasourceFile: '/etc/cloud/cloud.cfg.d/90_guestforge_datasource.cfg',
} as const satisfies OsDriver;
