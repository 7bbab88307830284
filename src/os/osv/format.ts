/**
 * What OSv brings to the file format: its `os` section of the profile. No boot trims: an OSv
 * image boots its one app, without systemd or cloud-init. Data only: imports nothing but zod
 * and src/model/ (see os/linux-format.ts).
 */
import { z } from 'zod';
import type { BootTrim } from '../../model/trim.ts';

export const os = z.strictObject({
  family: z.literal('osv'),
  release: z.string().default('latest').describe('OSv release of the base image'),
  runtime: z.enum(['native', 'java', 'node', 'python']).describe('How the app is started (Capstan run.yaml runtime)'),
  cmdline: z.string().optional().describe('Command line (native) or main file (java/node/python)'),
  bootcmd: z.string().optional().describe('Full OSv boot command; overrides what runtime derives'),
  env: z.record(z.string(), z.string()).default({}).describe('Environment of the app'),
  fs: z.enum(['zfs', 'rofs']).default('zfs').describe('Filesystem of the composed image'),
  version: z.string().default('0.1.0').describe('Capstan package version'),
  author: z.string().default('guestforge').describe('Capstan package author'),
});

export const trims: readonly BootTrim[] = [];

/**
 * The only firmware an OSv image boots under: OSv's loader is a BIOS boot sector and a 16-bit
 * stage (boot16.S) that reads the kernel through BIOS calls; OSv has no EFI loader to install.
 */
export const firmware = { only: 'bios', why: 'OSv\'s loader is a BIOS boot sector (boot16) that reads the kernel through BIOS calls; OSv has no EFI loader to install' } as const;
