/**
 * The families' parts of the file format, gathered: each family's `os` section of the profile
 * (the schema's discriminated union, in this order) and its boot trims. Data only, like the
 * files it gathers, so that the profile schema and policy/ can read it without importing the
 * drivers (test/layers.test.ts).
 */
import * as debian from './debian/format.ts';
import * as osv from './osv/format.ts';
import * as redhat from './redhat/format.ts';

/** Every family's format; its name is its os section's `family` literal. */
export const formats = [debian, redhat, osv] as const;

/** The profile's `os` sections, one per family, for z.discriminatedUnion('family', …). */
export const osSections = [debian.os, redhat.os, osv.os] as const;

/** A family whose images boot under one firmware only, and why (OSv: its BIOS loader). */
export function onlyFirmware(family: string): { only: 'bios'; why: string } | undefined {
  const format = formats.find((f) => formatFamily(f) === family);
  return format && 'firmware' in format ? format.firmware : undefined;
}

/** A family's name, as its os section says it. */
export const formatFamily = (format: (typeof formats)[number]): string => format.os.shape.family.value;
