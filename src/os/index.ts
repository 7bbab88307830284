import type { OsFamily } from '../profile/schema.ts';
import { debian } from './debian.ts';
import { osv } from './osv.ts';
import { redhat } from './redhat.ts';
import type { OsDriver } from './types.ts';

export const drivers = { debian, redhat, osv } satisfies Record<OsFamily, OsDriver>;

export function driverFor(family: OsFamily): OsDriver {
  return drivers[family];
}
