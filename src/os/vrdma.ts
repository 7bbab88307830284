/**
 * vRDMA (soft-RoCE) in the guest: the family's RDMA packages, a kernel
 * with rdma_rxe in every installed kernel, and a oneshot unit that loads
 * rdma_rxe and adds the link at each boot (`rdma link add` does not persist).
 * Hardware RDMA (mlx5 VFs) is left to rdma-core's own udev rules.
 */
import { shellWord } from '../util/quote.ts';
import type { Profile } from '../profile/schema.ts';
import { readShipped } from '../util/project.ts';
import type { CloudConfig } from '../cloudinit/yaml.ts';
import type { OsDriver } from '../stages/driver.ts';

export const vrdmaUnit = 'guestforge-vrdma.service';
export const vrdmaLinkScript = '/usr/local/sbin/guestforge-vrdma-link';
export const vrdmaModulesLoad = '/etc/modules-load.d/guestforge-vrdma.conf';
const kernelScript = '/var/lib/guestforge/vrdma-kernel.sh';


export async function vrdmaBuildConfig(profile: Profile, driver: OsDriver): Promise<CloudConfig> {
  if (!profile.vrdma.enabled) return {};
  const [link, unit, kernel] = await Promise.all([
    readShipped('cloud-init', 'vrdma-link.sh'),
    readShipped('cloud-init', vrdmaUnit),
    readShipped('cloud-init', 'vrdma-kernel.sh'),
  ]);
  const vars = [
    `INSTALL_KERNEL=${profile.vrdma.installKernel && driver.vrdmaKernel ? 1 : 0}`,
    `KERNEL_INSTALL=${shellWord(driver.vrdmaKernel?.install ?? 'false')}`,
    `KERNEL_REMOVE=${shellWord(driver.vrdmaKernel?.remove ?? 'false')}`,
  ].join('\n');
  return {
    package_update: true,
    packages: [...driver.vrdmaPackages],
    write_files: [
      { path: vrdmaLinkScript, permissions: '0755', content: link },
      { path: `/etc/systemd/system/${vrdmaUnit}`, permissions: '0644', content: unit.replace('@NETDEV@', profile.vrdma.netdev ?? '') },
      { path: vrdmaModulesLoad, permissions: '0644', content: 'rdma_rxe\n' },
      { path: kernelScript, permissions: '0755', content: kernel.replace(/^(#!.*\n)/, `$1${vars}\n`) },
    ],
    // Before the profile's commands (merge appends: these run after the layout).
    runcmd: [['sh', kernelScript], ['systemctl', 'enable', vrdmaUnit]],
  };
}
