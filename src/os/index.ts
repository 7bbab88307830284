import type { OsFamily } from '../profile/schema.ts';
import { debian } from './debian/index.ts';
import { osv } from './osv/index.ts';
import { redhat } from './redhat/index.ts';
import type { OsDriver } from '../stages/driver.ts';

export const drivers = { debian, redhat, osv } satisfies Record<OsFamily, OsDriver>;

export function driverFor(family: OsFamily): OsDriver {
  return drivers[family];
}
