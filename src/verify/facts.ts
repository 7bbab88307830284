/**
 * Everything verify looks at, read from an image in one read-only guestfish
 * session, using libguestfs's own calls (not the guest's binaries), so that
 * images from anywhere can be checked.
 */
import { layoutPaths } from '../policy/layout.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { CommandError, run } from '../exec/run.ts';
import type { GuestSession } from '../guestfs/session.ts';
import { copyOutRpmDb, globAll, readLimits, readTexts, unreadableWhy } from './read.ts';
import { accountPasswords, kernelCmdlinesOf, parseDpkgPackages, parseOsRelease, parsePasswd, parseRpmQuery, statField } from './parse.ts';
import type { Unread } from '../model/facts.ts';
import { kernelHeads } from './boot.ts';
import type { FileHead, GuestFacts, PackageDetail, PathFacts } from '../model/facts.ts';

/** Facts as JSON (kept with the seal and inject stages' cache entries) and back. */
export function factsToJson(facts: GuestFacts): unknown {
  return { ...facts, packages: [...facts.packages.entries()] };
}

export function factsFromJson(data: unknown): GuestFacts {
  const raw = data as Omit<GuestFacts, 'packages'> & { packages: [string, string][] };
  return { ...raw, packages: new Map(raw.packages) };
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
  const kernelPe = await kernelHeads(session, kernels, unread);
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
    kernelPe,
    rxeModules,
    modulesLoad,
    systemdUnits: units!.split('\n').filter(Boolean).map((p) => posix.basename(p)),
    ...(unread.length ? { unread } : {}),
  };
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
