import type { OsFamily } from '../profile/schema.ts';
import { debian } from './debian/index.ts';
import { osv } from './osv/index.ts';
import { redhat } from './redhat/index.ts';
import type { OsDriver, OwnImage } from '../stages/driver.ts';
import type { GuestFamily } from '../model/verify.ts';
import type { DiskFormat } from '../model/disk.ts';

export const drivers = { debian, redhat, osv } satisfies Record<OsFamily, OsDriver>;

export function driverFor(family: OsFamily): OsDriver {
  return drivers[family];
}

/** How verify tells each Linux family's guests, in the registry's order. */
export const guestFamilies: readonly GuestFamily[] = (Object.values(drivers) as OsDriver[]).flatMap((d) => (d.guest ? [d.guest] : []));

/** The first family that recognises the image as its own (OSv's loader), or undefined: a disk verify and smoke read as Linux. */
export async function recognizeImage(image: string, format: DiskFormat): Promise<OwnImage | undefined> {
  for (const driver of Object.values(drivers) as OsDriver[]) {
    const own = await driver.recognize?.(image, format);
    if (own) return own;
  }
  return undefined;
}
