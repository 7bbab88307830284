/**
 * Mounting a guest's filesystems in a guestfish session as the guest mounts them: its root found
 * by inspection (or the lone Linux filesystem), then what its fstab mounts. Verify, the seal and
 * inject stages and the outputs all mount through here.
 */
import { UsageError } from '../errors.ts';
import type { GuestSession } from '../guestfs/session.ts';
import { readLimits, readTexts } from './read.ts';

/** The image's layout is not one guestforge can judge: what was found, never a guessed verdict (exit 2). */
export class UnknownLayoutError extends UsageError {}

/**
 * Mount the guest's filesystems. With `inspect`, or when there is more than
 * one Linux filesystem, libguestfs inspection finds the root and its mounts;
 * otherwise the only Linux filesystem is the root (cheaper: no inspection).
 * Returns the root device.
 */
export async function mountGuest(session: GuestSession, options: { readonly: boolean; inspect: boolean }): Promise<string> {
  const opts = options.readonly ? 'ro' : '';
  const all = (await session.lines('list-filesystems')).map((l) => l.split(': ') as [string, string]);
  const filesystems = all.filter(([, type]) => type && /^(ext[234]|xfs|btrfs)$/.test(type));
  if (filesystems.length === 1 && !options.inspect) {
    const device = filesystems[0]![0]!;
    await session.call('mount-options', opts, device, '/');
    return device;
  }
  const found = all.map(([device, type]) => `${device} (${type})`).join(', ') || 'no filesystems';
  const roots = await session.lines('inspect-os');
  if (roots.length > 1) {
    const named: string[] = [];
    for (const r of roots) named.push(`${r}: ${(await session.call('inspect-get-product-name', r)).trim()}`);
    throw new UnknownLayoutError(`the image holds ${roots.length} operating systems (${named.join('; ')}): which one the cluster boots is not clear`, { hint: `filesystems found: ${found}` });
  }
  const root = roots[0];
  if (!root) {
    // Inspection knows the common distributions only; a lone Linux
    // filesystem is still the root, and the rules judge what is on it.
    const only = filesystems.length === 1 ? filesystems[0]![0]! : undefined;
    if (!only) throw new UnknownLayoutError(`no Linux operating system found on the image (filesystems: ${found})`, { hint: 'is this a guest disk image? verify reads ext2/3/4, xfs and btrfs roots, plain or in partitions (MBR, GPT) or LVM' });
    await session.call('mount-options', opts, only, '/');
    return only;
  }
  await mountRoot(session, root, options.readonly);
  return root;
}

/**
 * An inspected root and everything its fstab mounts (UUID, LABEL, LVM, btrfs subvolumes from
 * libguestfs's inspection; GPT PARTUUIDs, which inspection leaves out, added here), outermost
 * first. The fstab is the image's: a mount point must be a folder reached without a link (a
 * link could point the mount at the appliance's own folders), and an added mount that fails is
 * left out rather than failing the read (a `nofail` line the guest boots without).
 */
export async function mountRoot(session: GuestSession, root: string, readonly: boolean): Promise<void> {
  const opts = readonly ? 'ro' : '';
  const inspected = (await session.lines('inspect-get-mountpoints', root)).map((l) => l.split(': ') as [string, string]);
  const rootDevice = inspected.find(([m]) => m === '/')?.[1] ?? root;
  await session.call('mount-options', opts, rootDevice, '/');
  const extra: [string, string, boolean][] = inspected.filter(([m]) => m !== '/').map(([m, d]) => [m, d, false]);
  const done = new Set(inspected.map(([m]) => m));
  const fstab = (await readTexts(session, [{ path: '/etc/fstab', limit: readLimits.fileBytes }], [])).get('/etc/fstab') ?? '';
  const wanted = parseFstab(fstab).filter((e) => e.spec.toUpperCase().startsWith('PARTUUID=') && !done.has(e.mountpoint) && !e.options.split(',').includes('noauto'));
  if (wanted.length > 0 && wanted.length <= 64) {
    const byGuid = new Map<string, string>();
    for (const part of await session.lines('list-partitions')) {
      const disk = (await session.call('part-to-dev', part)).trim();
      if ((await session.call('part-get-parttype', disk)).trim() !== 'gpt') continue;
      byGuid.set((await session.call('part-get-gpt-guid', disk, (await session.call('part-to-partnum', part)).trim())).trim().toLowerCase(), part);
    }
    for (const e of wanted) {
      const device = byGuid.get(e.spec.slice('PARTUUID='.length).toLowerCase());
      if (device) extra.push([e.mountpoint, device, true]);
    }
  }
  // Outermost first, whichever list a mount point came from (/var before /var/lib).
  extra.sort((a, b) => a[0].split('/').length - b[0].split('/').length || a[0].localeCompare(b[0]));
  for (const [mountpoint, device, added] of extra) {
    // A mount point through a loop of links is no folder to mount on: left out, as one that is not a folder.
    const isDir = await session.tryBool('is-dir', mountpoint);
    const real = isDir ? (await session.call('realpath', mountpoint)).trim() : '';
    if (!isDir || real !== mountpoint) continue;
    try {
      await session.call('mount-options', opts, device, mountpoint);
    } catch (error) {
      if (!added) throw error;
    }
  }
}

/** fstab entries (spec, absolute mount point without `..`, options); comments, swap and odd lines left out. Pure. */
export function parseFstab(text: string): { spec: string; mountpoint: string; type: string; options: string }[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).flatMap((line) => {
    const [spec, mountpoint, type = 'auto', options = 'defaults'] = line.split(/\s+/);
    if (!spec || !mountpoint || !mountpoint.startsWith('/') || mountpoint.split('/').includes('..') || type === 'swap') return [];
    return [{ spec, mountpoint, type, options }];
  });
}
