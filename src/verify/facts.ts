/**
 * Everything verify looks at, read from an image in one read-only guestfish
 * session, using libguestfs's own calls (not the guest's binaries), so that
 * images from anywhere can be checked.
 */
import { UsageError } from '../errors.ts';
import { layoutPaths } from '../policy/layout.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { CommandError, run } from '../exec/run.ts';
import type { GuestSession } from '../guestfs/session.ts';
import { copyOutRpmDb, globAll, readLimits, readTexts, unreadableWhy } from './read.ts';
import type { Unread } from '../model/facts.ts';
import type { FileHead, GuestFacts, PackageDetail, PasswdEntry, PasswordState, PathFacts } from '../model/facts.ts';

/**
 * The kernel command lines a boot loader's files give: GRUB's defaults
 * (GRUB_CMDLINE_LINUX and _DEFAULT in /etc/default/grub and grub.d), the
 * first `linux` line of a generated grub.cfg (the default entry), BLS entries'
 * `options` (RHEL 8/9), grubenv's kernelopts and /etc/kernel/cmdline. Pure.
 */
export function kernelCmdlinesOf(files: { path: string; text: string }[]): { path: string; cmdline: string }[] {
  const out: { path: string; cmdline: string }[] = [];
  for (const { path, text } of files) {
    if (path.startsWith('/etc/default/grub')) {
      const parts = [...text.matchAll(/^\s*GRUB_CMDLINE_LINUX(?:_DEFAULT)?=(?:"([^"]*)"|'([^']*)'|(\S*))/gm)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
      if (parts.length) out.push({ path, cmdline: parts.join(' ').trim() });
    } else if (/\/grub2?\/grub\.cfg$/.test(path)) {
      const line = /^\s*linux(?:efi|16)?\s+\S+\s*(.*)$/m.exec(text);
      if (line) out.push({ path, cmdline: line[1]!.trim() });
    } else if (path.startsWith('/boot/loader/entries/')) {
      const line = /^options\s+(.*)$/m.exec(text);
      if (line) out.push({ path, cmdline: line[1]!.trim() });
    } else if (/grubenv$/.test(path)) {
      const line = /^kernelopts=(.*)$/m.exec(text);
      if (line) out.push({ path, cmdline: line[1]!.trim() });
    } else if (path === '/etc/kernel/cmdline') {
      out.push({ path, cmdline: text.trim() });
    }
  }
  return out;
}

/** Facts as JSON (kept with the seal and inject stages' cache entries) and back. */
export function factsToJson(facts: GuestFacts): unknown {
  return { ...facts, packages: [...facts.packages.entries()] };
}

export function factsFromJson(data: unknown): GuestFacts {
  const raw = data as Omit<GuestFacts, 'packages'> & { packages: [string, string][] };
  return { ...raw, packages: new Map(raw.packages) };
}

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^["']|["']$/g, '');
  }
  return out;
}

/** Installed packages of a dpkg status file: version, architecture, and the source package (`Source: name (version)` when its version differs). */
export function parseDpkgPackages(text: string): Map<string, PackageDetail & { version: string }> {
  const packages = new Map<string, PackageDetail & { version: string }>();
  for (const stanza of text.split(/\n\n+/)) {
    const field = (f: string) => new RegExp(`^${f}: (.+)$`, 'm').exec(stanza)?.[1]?.trim();
    const name = field('Package');
    const version = field('Version');
    if (!name || !version || !field('Status')?.endsWith(' installed')) continue;
    const arch = field('Architecture');
    const source = field('Source');
    packages.set(name, {
      version,
      ...(arch ? { arch } : {}),
      // No Source field: the source package has the binary's name and version.
      source: source ? (/\(/.test(source) ? source.replace(/\s*\((.+)\)$/, ' $1') : `${source} ${version}`) : `${name} ${version}`,
    });
  }
  return packages;
}

function fieldState(field: string): PasswordState {
  return field === '' ? 'empty' : /^[!*]/.test(field) ? 'locked' : 'usable';
}

/** Pure: the first field and the password field of each account line, in order (comments and blank lines left out). */
function accountLines(text: string): [string, string][] {
  // glibc's files backend skips leading blanks, then blank and # lines.
  return text.split('\n').map((l) => l.trimStart()).filter((l) => l && !l.startsWith('#')).map((l) => l.split(':')).filter((f) => f.length >= 2).map((f) => [f[0]!, f[1]!]);
}

/**
 * Pure: each account's password as the system reads it. pam_unix takes the
 * passwd field unless it is `x`; then glibc's first shadow line for the name.
 * So a hash or an empty field in passwd wins over a locked shadow line. A name
 * on two lines of either file is `duplicate`. An `x` with no shadow line has no
 * entry (no password opens it).
 */
export function accountPasswords(passwdText: string, shadowText: string): Record<string, PasswordState> {
  const out: Record<string, PasswordState> = {};
  const shadow = new Map<string, string>();
  const twice = new Set<string>();
  for (const [name, field] of accountLines(shadowText)) {
    if (shadow.has(name)) twice.add(name);
    else shadow.set(name, field);
  }
  const seen = new Set<string>();
  for (const [name, field] of accountLines(passwdText)) {
    if (seen.has(name)) twice.add(name);
    seen.add(name);
    if (out[name] !== undefined) continue;
    if (field !== 'x') out[name] = fieldState(field);
    else if (shadow.has(name)) out[name] = fieldState(shadow.get(name)!);
  }
  for (const name of twice) out[name] = 'duplicate';
  return out;
}

/** Accounts as glibc reads them: leading blanks skipped; a line short of home and shell still names a uid (su then uses /bin/sh). */
export function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .map((l) => l.trimStart())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2] ?? ''))
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), home: f[5] ?? '', shell: f[6] ?? '' }));
}

/** guestfish prints stat structs as "field: value" lines. */
/** Pure: one numeric field (mode, uid, gid…) of guestfish's stat or statns answer. */
export function statField(text: string, name: string): number | undefined {
  const m = new RegExp(`^(?:st_)?${name}: (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * Mount the guest's filesystems. With `inspect`, or when there is more than
 * one Linux filesystem, libguestfs inspection finds the root and its mounts;
 * otherwise the only Linux filesystem is the root (cheaper: no inspection).
 * Returns the root device.
 */
/** The image's layout is not one guestforge can judge: what was found, never a guessed verdict (exit 2). */
export class UnknownLayoutError extends UsageError {}

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

async function pathFacts(session: GuestSession, path: string, list: boolean, unread: Unread[]): Promise<PathFacts> {
  const exists = await session.tryBool('exists', path);
  if (exists === undefined) unread.push({ path, why: unreadableWhy });
  if (!exists) return { exists: false, isDir: false };
  const isDir = await session.tryBool('is-dir', path, 'followsymlinks:true');
  if (isDir === undefined) unread.push({ path, why: unreadableWhy });
  // stat follows links: a dangling one has no mode, and the call fails without ending the session.
  const mode = statField(await session.tryCall('stat', path), 'mode');
  const entries = isDir && list ? await session.lines('ls', path) : undefined;
  return { exists: true, isDir: Boolean(isDir), ...(mode !== undefined ? { mode } : {}), ...(entries ? { entries } : {}) };
}

/** Text files every verify reads (globs are added to them). */
const fixedTexts = [
  '/etc/os-release', '/usr/lib/os-release', '/etc/cloud/cloud.cfg', '/etc/passwd', '/etc/shadow', '/etc/ssh/sshd_config', '/etc/modules',
  '/etc/cloud/ds-identify.cfg', '/etc/default/grub', '/boot/grub/grub.cfg', '/boot/grub2/grub.cfg', '/boot/grub2/grubenv', '/etc/kernel/cmdline',
];
const dpkgStatus = '/var/lib/dpkg/status';

/**
 * Everything the rules judge, read within bounds (read.ts): the globs in one
 * guestfish round trip, every text file in two more, the rest with calls
 * that may fail without ending the session. What was not read is in `unread`.
 */
export async function gatherFacts(
  session: GuestSession,
  root: string,
  layout: { workspace: string; optVm: string; home: string },
): Promise<GuestFacts> {
  const unread: Unread[] = [];
  const [cloudCfgD, sshdD, modulesD, grubD, blsEntries, vmlinuz] = await globAll(session, [
    '/etc/cloud/cloud.cfg.d/*.cfg', '/etc/ssh/sshd_config.d/*.conf', '/etc/modules-load.d/*.conf', '/etc/default/grub.d/*.cfg', '/boot/loader/entries/*.conf', '/boot/vmlinuz-*',
  ], unread) as [string[], string[], string[], string[], string[], string[]];
  const texts = await readTexts(session, [
    { path: dpkgStatus, limit: readLimits.statusBytes },
    ...[...fixedTexts, ...cloudCfgD, ...sshdD, ...modulesD, ...grubD, ...blsEntries].map((path) => ({ path, limit: readLimits.fileBytes })),
  ], unread);
  const text = (path: string) => texts.get(path);

  const osRelease = parseOsRelease(text('/etc/os-release') ?? text('/usr/lib/os-release') ?? '');

  let parsed = new Map<string, PackageDetail & { version: string }>();
  let packageSource: GuestFacts['packageSource'] = 'none';
  const dpkg = text(dpkgStatus);
  if (dpkg !== undefined || unread.some((u) => u.path === dpkgStatus)) {
    parsed = parseDpkgPackages(dpkg ?? '');
    packageSource = 'dpkg';
  } else {
    for (const dbDir of ['/var/lib/rpm', '/usr/lib/sysimage/rpm']) {
      const isDir = await session.tryBool('is-dir', dbDir, 'followsymlinks:true');
      if (isDir === undefined) unread.push({ path: dbDir, why: unreadableWhy });
      if (!isDir) continue;
      const names = await session.lines('ls', dbDir);
      if (names.length === 0) continue;
      packageSource = 'rpm';
      // RHEL 9's /var/lib/rpm is a symlink to /usr/lib/sysimage/rpm.
      parsed = await rpmPackages(session, (await session.call('realpath', dbDir)).trim(), names, unread);
      break;
    }
  }
  const packages = new Map([...parsed].map(([name, p]) => [name, p.version]));
  const packageDetails: Record<string, PackageDetail> = Object.fromEntries([...parsed].map(([name, { version: _, ...detail }]) => [name, detail]));

  const inOrder = (paths: string[]) => paths.flatMap((path) => (texts.has(path) ? [{ path, text: texts.get(path)! }] : []));
  const cloudConfigs = inOrder(['/etc/cloud/cloud.cfg', ...cloudCfgD]);
  const paths: Record<string, PathFacts> = {};
  for (const [path, list] of layoutPaths(layout)) paths[path] = await pathFacts(session, path, list, unread);
  const passwdText = text('/etc/passwd') ?? '';
  const passwd = parsePasswd(passwdText);
  const passwords = accountPasswords(passwdText, text('/etc/shadow') ?? '');
  const machineIdFile = await session.tryBool('is-file', '/etc/machine-id');
  if (machineIdFile === undefined) unread.push({ path: '/etc/machine-id', why: unreadableWhy });
  const machineId = machineIdFile ? await fileHead(session, '/etc/machine-id') : undefined;
  const dbusId = '/var/lib/dbus/machine-id';
  const [dbusLink, dbusFile] = [await session.tryBool('is-symlink', dbusId), await session.tryBool('is-file', dbusId)];
  if (dbusLink === undefined || dbusFile === undefined) unread.push({ path: dbusId, why: unreadableWhy });
  const dbusMachineId = dbusLink === false && dbusFile ? await fileHead(session, dbusId) : undefined;
  const sshdConfigs = inOrder(['/etc/ssh/sshd_config', ...sshdD]);
  const kernels = vmlinuz.map((p) => posix.basename(p).replace(/^vmlinuz-/, ''));
  const rxeGlobs = await session.batch(kernels.map((version) => ['glob-expand', `/lib/modules/${version}/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko*`]));
  const rxeModules: Record<string, string[]> = Object.fromEntries(kernels.map((version, i) => [version, rxeGlobs[i]!.split('\n').filter(Boolean)]));
  const modulesLoad = inOrder([...modulesD, '/etc/modules']);
  const cloudInitDisabledBy: string[] = [];
  for (const path of ['/etc/cloud/cloud-init.disabled']) {
    const there = await session.tryBool('exists', path);
    if (there === undefined) unread.push({ path, why: unreadableWhy });
    if (there) cloudInitDisabledBy.push(path);
  }
  const dsIdentifyText = text('/etc/cloud/ds-identify.cfg');
  const bootFiles = inOrder(['/etc/default/grub', ...grubD, '/boot/grub/grub.cfg', '/boot/grub2/grub.cfg', ...blsEntries, '/boot/grub2/grubenv', '/etc/kernel/cmdline']);
  const instancesDir = await session.tryBool('is-dir', '/var/lib/cloud/instances');
  if (instancesDir === undefined) unread.push({ path: '/var/lib/cloud/instances', why: unreadableWhy });
  // Names only (no file is read): one call each, however many there are.
  const [hostKeys, units] = await session.batch([['glob-expand', '/etc/ssh/ssh_host_*'], ['glob-expand', '/etc/systemd/system/*.service']]);
  return {
    osRelease,
    packages,
    packageDetails,
    cloudInitDisabledBy,
    ...(dsIdentifyText !== undefined ? { dsIdentify: { path: '/etc/cloud/ds-identify.cfg', text: dsIdentifyText } } : {}),
    kernelCmdlines: kernelCmdlinesOf(bootFiles),
    packageSource,
    cloudConfigs,
    paths,
    passwd,
    passwords,
    ...(machineId ? { machineId } : {}),
    ...(dbusMachineId ? { dbusMachineId } : {}),
    sshdConfigs,
    sshHostKeys: hostKeys!.split('\n').filter(Boolean),
    cloudInstances: instancesDir ? await session.lines('ls', '/var/lib/cloud/instances') : [],
    kernels,
    rxeModules,
    modulesLoad,
    systemdUnits: units!.split('\n').filter(Boolean).map((p) => posix.basename(p)),
    ...(unread.length ? { unread } : {}),
  };
}

/** `rpm -qa` lines of NAME, VERSION-RELEASE, ARCH, SOURCERPM and LICENSE, tab-separated ("(none)" where rpm has no value). */
export function parseRpmQuery(stdout: string): Map<string, PackageDetail & { version: string }> {
  const packages = new Map<string, PackageDetail & { version: string }>();
  for (const line of stdout.split('\n')) {
    const [name, version, arch, sourceRpm, license] = line.trim().split('\t').map((v) => (v === '(none)' ? '' : v));
    if (!name || !version || name === 'gpg-pubkey') continue;
    const source = sourceRpm ? /^(.+)-([^-]+-[^-]+)\.src\.rpm$/.exec(sourceRpm) : null;
    packages.set(name, { version, ...(arch ? { arch } : {}), ...(source ? { source: `${source[1]} ${source[2]}` } : {}), ...(license ? { license } : {}) });
  }
  return packages;
}

/**
 * The rpm database, copied out of the image and read by the host's rpm, within
 * bounds (copyOutRpmDb). libguestfs's own reader (inspect-list-applications2)
 * fails here on RHEL 9's sqlite database from a read-only mount (its WAL needs
 * a writable folder), and the guest's rpm cannot run offline in every image. A
 * database rpm cannot read is said in `unread`, not thrown: the image is what
 * is wrong.
 */
async function rpmPackages(session: GuestSession, dbDir: string, names: string[], unread: Unread[]): Promise<Map<string, PackageDetail & { version: string }>> {
  const local = await mkdtemp(join(tmpdir(), 'guestforge-rpmdb-'));
  try {
    const copied = await copyOutRpmDb(session, dbDir, names, local, unread);
    if (!copied) return new Map();
    const { stdout } = await run(['rpm', '--dbpath', copied, '-qa', '--qf', '%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{SOURCERPM}\\t%{LICENSE}\\n'], { timeoutMs: 120_000 });
    return parseRpmQuery(stdout);
  } catch (error) {
    if (!(error instanceof CommandError) || error.result.argv[0] !== 'rpm') throw error;
    unread.push({ path: dbDir, why: `rpm cannot read it: ${(error.result.stderr.trim().split('\n').at(-1) ?? '').slice(0, 200) || (error.result.timedOut ? 'timed out' : `exit ${error.result.exitCode}`)}` });
    return new Map();
  } finally {
    await rm(local, { recursive: true, force: true });
  }
}

async function fileHead(session: GuestSession, path: string): Promise<FileHead> {
  const bytes = Number((await session.call('filesize', path)).trim());
  return { bytes, head: bytes > 0 ? await session.call('pread', path, '64', '0') : '' };
}
