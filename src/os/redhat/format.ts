/**
 * What RedHat brings to the file format: its `os` section of the profile and its boot trims
 * (the Linux ones). Data only: imports nothing but zod and src/model/ (see os/linux-format.ts).
 */
import { z } from 'zod';
import type { BootTrim } from '../../model/trim.ts';
import { cloudInitKeysToConsole, e2scrubReap } from '../linux-format.ts';

export const os = z.strictObject({
  family: z.literal('redhat'),
  release: z.enum(['8', '9']).describe('Major release'),
  distro: z.enum(['rocky', 'alma', 'rhel', 'centos']).default('rocky').describe('Which rebuild of RHEL'),
  selinux: z
    .enum(['relabel', 'keep'])
    .default('relabel')
    .describe('After offline edits: relabel (selinux-relabel or /.autorelabel) or keep labels'),
});

export const trims: readonly BootTrim[] = [cloudInitKeysToConsole, e2scrubReap];
