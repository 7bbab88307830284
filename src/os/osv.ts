import type { OsDriver } from './types.ts';

/** OSv has no package manager and no guestfish-readable filesystem: it is packaged, then composed. */
export const osv = {
  family: 'osv',
  title: 'OSv unikernel',
  stages: () => ['base', 'package', 'compose', 'finalize'],
  vrdmaPackages: [],
  buildConfig: () => ({}),
  offlineFixups: async () => [],
  datasourceFile: '',
} as const satisfies OsDriver;
