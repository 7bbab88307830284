import type { GuestSession } from '../../guestfs/session.ts';
import type { Profile } from '../../profile/schema.ts';
import { linuxBuildSeed, linuxClusterSeed } from '../linux-seed.ts';
import type { CloudConfig } from '../../cloudinit/yaml.ts';
import type { OsDriver } from '../../stages/driver.ts';
import { linuxPlan } from '../../stages/index.ts';

/** Pure: SELINUX= and SELINUXTYPE= from /etc/selinux/config. */
export function selinuxConfig(text: string): { mode?: 'enforcing' | 'permissive' | 'disabled'; type: string } {
  const mode = /^\s*SELINUX\s*=\s*(enforcing|permissive|disabled)\s*$/m.exec(text)?.[1] as 'enforcing' | 'permissive' | 'disabled' | undefined;
  const type = /^\s*SELINUXTYPE\s*=\s*(\S+)\s*$/m.exec(text)?.[1] ?? 'targeted';
  return { ...(mode ? { mode } : {}), type };
}

export const redhat: OsDriver = {
  family: 'redhat',
  title: 'RedHat family',
  plan: () => linuxPlan,
  guest: { family: 'redhat', osReleaseIds: ['rhel', 'fedora', 'centos', 'rocky', 'almalinux'], verbsPackages: ['rdma-core', 'libibverbs'] },
  vrdmaPackages: ['rdma-core', 'libibverbs', 'libibverbs-utils', 'librdmacm-utils', 'infiniband-diags', 'perftest'],
  // rdma_rxe ships in kernel-modules-extra, per kernel version.
  vrdmaKernel: {
    install: 'for v; do dnf install -y "kernel-modules-extra-$v" || exit 1; done',
    remove: 'dnf remove -y "kernel-core-$1"',
  },
  buildConfig(_profile: Profile): CloudConfig {
    // dnf is cloud-init's package manager here; nothing else differs at build time.
    return {};
  },
  async offlineFixups(profile: Profile, session: GuestSession): Promise<string[]> {
    if (profile.os.family !== 'redhat' || profile.os.selinux === 'keep') return [];
    const config = (await session.bool('is-file', '/etc/selinux/config')) ? await session.call('cat', '/etc/selinux/config') : '';
    const { mode, type } = selinuxConfig(config);
    if (mode === 'disabled' || mode === undefined) return [`SELinux ${mode ?? 'not configured'}: no relabel needed`];
    // Files written offline carry no SELinux labels: label them now if the
    // appliance can (setfiles), else at first boot (one extra reboot).
    if (await session.bool('feature-available', 'selinuxrelabel')) {
      await session.call('selinux-relabel', `/etc/selinux/${type}/contexts/files/file_contexts`, '/');
      return [`SELinux ${mode}: relabelled offline (selinux-relabel, ${type} policy)`];
    }
    await session.call('touch', '/.autorelabel');
    return [`SELinux ${mode}: relabel scheduled for first boot (/.autorelabel; this libguestfs has no selinux-relabel)`];
  },
  datasourceFile: '/etc/cloud/cloud.cfg.d/90_guestforge_datasource.cfg',
  clusterLayout: true,
  checkProfile: () => [],
  buildSeed(profile: Profile, nonce: string) {
    return linuxBuildSeed(profile, redhat, nonce);
  },
  clusterSeed: linuxClusterSeed,
};
