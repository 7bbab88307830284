/** An OSv image as verify and smoke meet it: no filesystem libguestfs reads, so it is recognised by its loader and command line. */
import type { DiskFormat } from '../../model/disk.ts';
import type { OwnImage } from '../../stages/driver.ts';
import { inspectOsv } from './cmdline.ts';
import { smokeOsv } from './smoke.ts';

export async function recognizeOsv(image: string, format: DiskFormat): Promise<OwnImage | undefined> {
  const osv = await inspectOsv(image, format);
  if (!osv) return undefined;
  return {
    family: 'osv',
    looksLike: `an OSv image (${osv.version ?? 'command line at byte 512'})`,
    lines: [
      `OSv image: ${osv.version ?? 'version banner not found in the loader'}`,
      `command line (byte 512): ${osv.cmdline || '(empty: a base, no app to run)'}`,
      osv.zfs ? `ZFS partition: MBR entry 2 at ${osv.zfs.start} bytes, ${Math.round(osv.zfs.bytes / 1024 / 1024)} MiB` : 'no ZFS partition (a kernel-only loader)',
      'the cluster\'s Linux guest rules do not apply to OSv',
    ],
    report: { os: { family: 'osv', ...(osv.version ? { version: osv.version } : {}) }, cmdline: osv.cmdline, ...(osv.zfs ? { zfs: osv.zfs } : {}), results: [] },
    smoke: smokeOsv,
  };
}
