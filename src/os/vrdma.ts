/**
 * vRDMA (soft-RoCE) in the guest: the family's RDMA packages, and a kernel
 * that has rdma_rxe. The per-boot link set-up comes with the vRDMA issue.
 */
import type { Profile } from '../profile/schema.ts';
import type { CloudConfig, OsDriver } from './types.ts';

export function vrdmaBuildConfig(profile: Profile, driver: OsDriver): CloudConfig {
  if (!profile.vrdma.enabled) return {};
  return { package_update: true, packages: [...driver.vrdmaPackages] };
}
