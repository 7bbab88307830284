/**
 * The rehearsal's NFS server: nfs-ganesha (Debian's packages), NFSv4 only,
 * bound to 127.0.0.1 on a free port, one export per cluster share. A guest on
 * qemu's user network reaches it as 10.0.2.2 (slirp connects from the host's
 * loopback), and NFSv4 needs that one port: no portmapper, no mountd.
 */
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { start } from '../exec/run.ts';
import { freePort, listenedBy, listening } from '../util/net.ts';

export interface NfsExport {
  /** NFSv4 pseudo path the guest mounts, e.g. /workspace. */
  pseudo: string;
  /** Host folder behind it. */
  path: string;
}

export interface NfsServer {
  port: number;
  stop(): Promise<void>;
}

/** Pure: ganesha's configuration for these exports. */
export function ganeshaConfig(port: number, recoveryDir: string, exports: NfsExport[]): string {
  const blocks = exports.map((e, i) => [
    'EXPORT {',
    `  Export_Id = ${i + 1}; Path = "${e.path}"; Pseudo = "${e.pseudo}";`,
    '  Access_Type = RW; Squash = No_Root_Squash; Protocols = 4; SecType = sys;',
    '  FSAL { Name = VFS; }',
    // slirp's connections arrive from the host's loopback.
    '  CLIENT { Clients = 127.0.0.1; Access_Type = RW; }',
    '}',
  ].join('\n'));
  return [
    `NFS_CORE_PARAM { Protocols = 4; NFS_Port = ${port}; Bind_addr = 127.0.0.1; Enable_NLM = false; Enable_RQUOTA = false; }`,
    `NFSV4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = "${recoveryDir}"; Only_Numeric_Owners = true; }`,
    ...blocks,
    '',
  ].join('\n');
}

export async function startNfsServer(dir: string, exports: NfsExport[], signal?: AbortSignal): Promise<NfsServer> {
  for (const e of exports) {
    if (/["\n]/.test(e.path + e.pseudo)) throw new Error(`unsafe NFS export path: ${e.path} ${e.pseudo}`);
  }
  await mkdir(join(dir, 'recovery'), { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'ganesha.conf');
  const logFile = join(dir, 'ganesha.log');
  await writeFile(conf, ganeshaConfig(port, join(dir, 'recovery'), exports));
  const child = start(['ganesha.nfsd', '-F', '-L', logFile, '-f', conf, '-p', join(dir, 'ganesha.pid')], { ...(signal ? { cancelSignal: signal } : {}) });
  let exited = false;
  void child.then(() => (exited = true), () => (exited = true));
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    await Promise.race([child.catch(() => undefined), new Promise((r) => setTimeout(r, 10_000))]);
    if (!exited) child.kill('SIGKILL');
    await child.catch(() => undefined);
  };
  // A slow host gets time while ganesha runs; one that exited is reported at once.
  for (const until = Date.now() + 2 * 60_000; Date.now() < until && !exited;) {
    // Ours, not a listener another local user put on the port first.
    if (child.pid && (await listening(port)) && (await listenedBy(child.pid, port))) return { port, stop };
    await new Promise((r) => setTimeout(r, 500));
  }
  await stop();
  const said = await readFile(logFile, 'utf8').catch(() => '');
  const result = await child.catch((e: unknown) => e as { stderr?: string; cause?: { code?: string } });
  if ((result as { cause?: { code?: string } })?.cause?.code === 'ENOENT') {
    throw new UserError('ganesha.nfsd not found: the rehearsal serves the cluster\'s NFS exports with nfs-ganesha', { hint: 'apt-get install nfs-ganesha nfs-ganesha-vfs' });
  }
  throw new UserError(`the NFS server did not start on 127.0.0.1:${port}`, {
    hint: `last lines of ${logFile}:\n${said.trim().split('\n').slice(-5).join('\n')}`,
  });
}

/** Make an export folder owned by uid:gid with mode, as the cluster's share would be. */
export async function makeExportDir(path: string, uid: number, gid: number, mode: number): Promise<void> {
  await mkdir(path, { recursive: true });
  await chown(path, uid, gid);
  await chmod(path, mode);
}
