/**
 * Which firmwares an image can boot under, read from the disk itself: its partition table, the
 * boot code in its first sector, a BIOS boot partition, the EFI system partition's removable
 * loader, and the PE headers of the loaders and kernels (signed or not). Works on any image:
 * nothing here asks what made it. The reads are bounded (a sector, a PE header each).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { GuestSession } from '../guestfs/session.ts';
import type { BootFacts, GuestFacts, PeFacts, Unread } from '../model/facts.ts';
import { gptType } from '../model/disk.ts';
import { parsePartList } from './parse.ts';

/** The MBR type byte of an ESP (the GPT types are model/disk.ts gptType). */
export const espMbrId = 0xef;

/** The loader a UEFI firmware with no boot entries starts (a fresh VM's vars have none): the removable path. */
export const removableLoader = 'EFI/BOOT/BOOTX64.EFI';

/** How much of a PE file verify reads: its headers, which hold the certificate table's entry. */
export const peHeadBytes = 4096;

/** At most this many loaders on the ESP and kernels in /boot are read; more is said in `unread` (verify.complete fails). */
export const bootReadLimits = { loaders: 64, kernels: 16 };

/**
 * Pure: what a PE file's headers say. `signed`: its certificate table (data directory 4, the
 * Authenticode signature) is not empty; whose signature it is, only a firmware with the keys can
 * tell (the Secure Boot smoke boot does). `x64`: machine AMD64, what an x86-64 UEFI runs.
 */
export function peFacts(head: Uint8Array): PeFacts {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length < 64 || head[0] !== 0x4d || head[1] !== 0x5a) return { pe: false, x64: false, signed: false };
  const at = view.getUint32(0x3c, true);
  if (at + 24 + 2 > head.length || view.getUint32(at, true) !== 0x00004550) return { pe: false, x64: false, signed: false };
  const machine = view.getUint16(at + 4, true);
  const optional = at + 24;
  const magic = view.getUint16(optional, true);
  if (magic !== 0x10b && magic !== 0x20b) return { pe: false, x64: false, signed: false };
  // The data directories follow the optional header's fixed part: 96 bytes for PE32, 112 for PE32+;
  // the count before them says how many there are (fewer than 5: no certificate table at all).
  const fixed = magic === 0x20b ? 112 : 96;
  const count = optional + fixed <= head.length ? view.getUint32(optional + fixed - 4, true) : 0;
  const security = optional + fixed + 4 * 8;
  const size = count >= 5 && security + 8 <= head.length ? view.getUint32(security + 4, true) : 0;
  return { pe: true, x64: machine === 0x8664, signed: size > 0 };
}

/** Pure: a boot sector's code area (its first 440 bytes) holds code, and which loader's when it says. */
export function bootCodeOf(sector: Uint8Array): BootFacts['mbrCode'] {
  const code = sector.subarray(0, 440);
  if (code.every((b) => b === 0)) return 'none';
  return Buffer.from(code).includes('GRUB') ? 'grub' : 'other';
}

/**
 * Read the boot facts. Call it last in a session: it unmounts everything to mount the ESP
 * read-only at the appliance's root. What it could not read goes to `unread`.
 */
export async function gatherBootFacts(session: GuestSession, unread: Unread[] = []): Promise<BootFacts> {
  const local = await mkdtemp(join(tmpdir(), 'guestforge-boot-'));
  try {
    const file = join(local, 'head');
    const device = (await session.lines('list-devices'))[0];
    if (!device) return { table: 'none', mbrCode: 'none' };
    const table = (await session.tryCall('part-get-parttype', device)).trim() || 'none';
    const sector = await deviceHead(session, device, 512, file);
    const mbrCode = sector ? bootCodeOf(sector) : 'none';
    const partitions = table === 'none' ? [] : parsePartList(await session.tryCall('part-list', device));
    let biosBoot: BootFacts['biosBoot'];
    let espNum: number | undefined;
    for (const p of partitions) {
      const type = table === 'gpt'
        ? (await session.tryCall('part-get-gpt-type', device, String(p.num))).trim().toUpperCase()
        : Number((await session.tryCall('part-get-mbr-id', device, String(p.num))).trim());
      if (type === gptType.biosBoot) {
        const core = await deviceHead(session, `${device}${p.num}`, 512, file);
        biosBoot = { partnum: p.num, core: Boolean(core && core.some((b) => b !== 0)) };
      } else if ((type === gptType.esp || type === espMbrId) && espNum === undefined) {
        espNum = p.num;
      }
    }
    let esp: BootFacts['esp'];
    if (espNum !== undefined) {
      const part = `${device}${espNum}`;
      const fsType = (await session.tryCall('vfs-type', part)).trim();
      // Only a FAT is an ESP a firmware reads; anything else is not mounted, let alone read.
      let mounted = false;
      if (fsType === 'vfat') {
        await session.tryCall('umount-all');
        await session.tryCall('mount-ro', part, '/');
        mounted = (await session.lines('mountpoints')).some((l) => l === `${part}: /`);
      }
      if (!mounted) {
        esp = { partnum: espNum, fsType, readable: false, loaders: {} };
      } else {
        // The removable path and each vendor folder's loaders: EFI/*/*.efi, case as the FAT holds it.
        const found = (await session.tryCall('glob-expand', '/EFI/*/*.[eE][fF][iI]')).split('\n').filter(Boolean);
        if (found.length > bootReadLimits.loaders) unread.push({ path: 'ESP EFI/*/*.efi', why: `${found.length} loaders, more than the ${bootReadLimits.loaders} verify reads: none judged` });
        const loaders: Record<string, PeFacts> = {};
        for (const path of found.length > bootReadLimits.loaders ? [] : found) {
          const bytes = await fileHead(session, path, peHeadBytes, file);
          if (bytes) loaders[path.replace(/^\//, '')] = peFacts(bytes);
          else unread.push({ path: `ESP ${path}`, why: 'not a regular file, or unreadable' });
        }
        await session.tryCall('umount-all');
        esp = { partnum: espNum, fsType, readable: true, loaders };
      }
    }
    return { table, mbrCode, ...(biosBoot ? { biosBoot } : {}), ...(esp ? { esp } : {}) };
  } finally {
    await rm(local, { recursive: true, force: true });
  }
}

/** The first `bytes` of a disk or partition, through a host file (guestfish prints binary escaped); undefined when it cannot be read. */
async function deviceHead(session: GuestSession, device: string, bytes: number, file: string): Promise<Uint8Array | undefined> {
  await rm(file, { force: true });
  await session.tryCall('download-offset', device, file, '0', String(bytes));
  return readFile(file).then((b) => new Uint8Array(b), () => undefined);
}

/**
 * The first `bytes` of a guest file, only when it is a regular file (a FIFO or device node named
 * like a loader or kernel would block the appliance's read); undefined otherwise.
 */
async function fileHead(session: GuestSession, path: string, bytes: number, file: string): Promise<Uint8Array | undefined> {
  if (!(await session.tryBool('is-file', path, 'followsymlinks:true'))) return undefined;
  return deviceHead(session, path, bytes, file);
}

/** The guest's kernels' PE headers (Debian's and RedHat's are signed for Secure Boot), read while its root is mounted; what was not read goes to `unread`. */
export async function kernelHeads(session: GuestSession, kernels: readonly string[], unread: Unread[]): Promise<Record<string, PeFacts>> {
  if (kernels.length > bootReadLimits.kernels) {
    unread.push({ path: '/boot/vmlinuz-*', why: `${kernels.length} kernels, more than the ${bootReadLimits.kernels} verify reads the headers of: none judged` });
    return {};
  }
  const local = await mkdtemp(join(tmpdir(), 'guestforge-kernel-'));
  try {
    const out: Record<string, PeFacts> = {};
    for (const version of kernels) {
      const path = posix.join('/boot', `vmlinuz-${version}`);
      const bytes = await fileHead(session, path, peHeadBytes, join(local, 'head'));
      if (bytes) out[version] = peFacts(bytes);
      else unread.push({ path, why: 'not a regular file, or unreadable' });
    }
    return out;
  } finally {
    await rm(local, { recursive: true, force: true });
  }
}

/** The boot facts into `facts`, with what was not read in its `unread` (verify.complete): the last step of a session. */
export async function addBootFacts(session: GuestSession, facts: GuestFacts): Promise<void> {
  const unread: Unread[] = [];
  facts.boot = await gatherBootFacts(session, unread);
  if (unread.length) facts.unread = [...(facts.unread ?? []), ...unread];
}
