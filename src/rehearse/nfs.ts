/**
 * The rehearsal's NFS server: nfs-ganesha (Debian's packages), NFSv4 only,
 * fenced from the host and from its other users.
 *
 * - Network: ganesha runs in a network namespace of its own (only `lo`), so
 *   no local process can reach it. Its one door is a unix socket in the
 *   rehearsal's private work folder (0700), served by socat inside that
 *   namespace; each VM's slirp reaches it through `guestfwd` (a socat per
 *   connection), so a guest mounts `10.0.2.100:/home` as it would mount the
 *   cluster's server.
 * - Files: it runs in a mount namespace whose root (pivot_root) is a tmpfs
 *   holding a copy of its own program, one tmpfs per export (nodev, nosuid)
 *   and a proc of its own PID namespace. No filesystem of the host is mounted
 *   where it runs, so no file handle, forged or not, can name a host file
 *   (ganesha 4.3 claims the parent filesystem of an export on `..`: an export
 *   folder on the host's disk gave the whole disk away).
 * - Identity: root squashed to the owner's uid and gid.
 * - Lifetime: `setpriv --pdeathsig KILL unshare --kill-child=SIGKILL` ends
 *   ganesha when we end, even by SIGKILL; the namespaces and their tmpfs go
 *   with it (nothing of it is kept, so nothing waits for its orderly
 *   shutdown).
 */
import { readFile, writeFile, mkdir, chmod, chown } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { start } from '../exec/run.ts';
import { shellWord } from '../util/quote.ts';

/** Where a guest finds the rehearsal's NFS server (slirp forwards it; nothing listens there on the host). */
export const nfsFromGuest = { address: '10.0.2.100', port: 2049 } as const;

export interface NfsExport {
  /** Export name: its pseudo path is /<name>, its tmpfs /exports/<name> in the server's view. */
  name: string;
  /** Host folder whose contents are copied into the export when the server starts. */
  seed: string;
  uid: number;
  gid: number;
  mode: number;
}

export interface NfsServer {
  /** The server's door: a unix socket only root can open (a private folder). */
  socket: string;
  /** The host's view of export `name` while the server runs (read the job's files there). */
  exportPath(name: string): string;
  stop(): Promise<void>;
}

/** Programs copied into the server's root with the libraries they load. */
const programs = ['/usr/bin/ganesha.nfsd', '/usr/bin/socat', '/usr/bin/umount', '/usr/bin/setpriv', '/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so'];

/**
 * The capabilities ganesha keeps (its bounding set): files as any owner, handles, its port, its
 * descriptor limit. Not mount, mknod, ptrace, modules, raw I/O: a server a guest took over can
 * neither mount a host disk nor reach into another process.
 */
export const ganeshaCaps = ['chown', 'dac_override', 'dac_read_search', 'fowner', 'fsetid', 'setgid', 'setuid', 'net_bind_service', 'sys_resource'];

/** Each export's tmpfs: memory is used only as files are written; files bounded in number too. */
export const exportSize = '4g';
const exportInodes = 262_144;

const safePath = /^\/[A-Za-z0-9._/+-]+$/;

/** Pure: ganesha's configuration: every export root-squashed to the owner, to clients on its own loopback (socat). */
export function ganeshaConfig(runDir: string, exports: readonly Pick<NfsExport, 'name'>[], anon: { uid: number; gid: number }): string {
  const blocks = exports.map((e, i) => [
    'EXPORT {',
    `  Export_Id = ${i + 1}; Path = "/exports/${e.name}"; Pseudo = "/${e.name}";`,
    `  Access_Type = RW; Squash = Root_Squash; Anonymous_Uid = ${anon.uid}; Anonymous_Gid = ${anon.gid}; Protocols = 4; SecType = sys;`,
    '  FSAL { Name = VFS; }',
    // socat, inside the namespace, is the only client there is.
    '  CLIENT { Clients = 127.0.0.1; Access_Type = RW; }',
    '}',
  ].join('\n'));
  return [
    // No Bind_addr: the namespace has nothing but lo (and ganesha cannot resolve 127.0.0.1 without another address).
    `NFS_CORE_PARAM { Protocols = 4; NFS_Port = ${nfsFromGuest.port}; Enable_NLM = false; Enable_RQUOTA = false; }`,
    // UseGetpwnam: no libnfsidmap (it wants /etc/idmapd.conf); owners travel as numbers anyway.
    `NFSV4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = "${runDir}/recovery"; Only_Numeric_Owners = true; UseGetpwnam = true; }`,
    ...blocks,
    '',
  ].join('\n');
}

/**
 * Pure: the script that runs as PID 1 of the new namespaces (then becomes ganesha):
 * tmpfs root, program copy, exports filled from their seeds, proc, a
 * read-only /dev with null only, pivot_root, socat on the unix socket, then
 * ganesha in the foreground with a narrow capability bounding set. `dir` is the host's private folder; inside, the
 * server's run folder has the same path, so `ps` names the rehearsal.
 */
export function fenceScript(dir: string, exports: readonly NfsExport[]): string {
  const q = shellWord;
  const root = `${dir}/root`;
  const lines = [
    'set -eu',
    'ip link set lo up',
    `R=${q(root)}`,
    'mkdir -p "$R"',
    'mount -t tmpfs -o size=64m,nr_inodes=4096,mode=0755,nodev,nosuid,noexec gf-nfs-root "$R"',
    `mkdir -p "$R/gf" "$R/proc" "$R/dev" "$R/exports" "$R"${q(dir)}`,
    'mount -t tmpfs -o size=128m,mode=0755,nodev,nosuid gf-nfs-program "$R/gf"',
    `for f in ${programs.map(q).join(' ')}; do`,
    '  cp --parents -L "$f" "$R/gf/"',
    '  ldd "$f" | awk \'$3 ~ /^\\// {print $3} $1 ~ /^\\// {print $1}\' | while read -r l; do cp --parents -L -n "$l" "$R/gf/"; done',
    'done',
    'mkdir -p "$R/gf/etc" && ln -s /proc/self/mounts "$R/gf/etc/mtab"',
    '[ ! -e /etc/netconfig ] || cp /etc/netconfig "$R/gf/etc/"',
    // /usr, /etc and wherever ldd found the loader and libraries (/lib64, /lib on merged /usr), seen at the root.
    'for l in "$R"/gf/*; do ln -s "gf/${l##*/}" "$R/${l##*/}"; done',
    ...exports.flatMap((e) => {
      const mnt = `"$R/exports/${e.name}"`;
      return [
        `mkdir ${mnt}`,
        `mount -t tmpfs -o size=${exportSize},nr_inodes=${exportInodes},mode=0755,nodev,nosuid,noexec gf-nfs-${e.name} ${mnt}`,
        `cp -a ${q(`${e.seed}/.`)} ${mnt}/`,
        `chown ${e.uid}:${e.gid} ${mnt}`,
        `chmod ${e.mode.toString(8)} ${mnt}`,
      ];
    }),
    `cp ${q(`${dir}/ganesha.conf`)} "$R"${q(`${dir}/ganesha.conf`)}`,
    'mount -t proc -o nosuid,nodev,noexec proc "$R/proc"',
    // A read-only /dev holding only null; the kernel's knobs out of reach.
    'mount -t tmpfs -o size=16k,mode=0755,nosuid,noexec gf-nfs-dev "$R/dev" && mknod -m 666 "$R/dev/null" c 1 3 && mount -o remount,ro "$R/dev"',
    'mount --bind "$R/proc/sys" "$R/proc/sys" && mount -o remount,bind,ro "$R/proc/sys" ',
    '[ ! -e "$R/proc/sysrq-trigger" ] || mount --bind "$R/dev/null" "$R/proc/sysrq-trigger"',
    // socat binds the host-visible socket before the host's files leave the view; its working folder
    // and descriptors are the server's own, so nothing in the namespace keeps a way back to the host's disk.
    `cd "$R" && socat UNIX-LISTEN:${q(`${dir}/nfs.sock`)},fork,max-children=64,mode=0600 TCP:127.0.0.1:${nfsFromGuest.port} < "$R/dev/null" > "$R/dev/null" 2>&1 &`,
    // Bound before the host's files leave the view (after, the path would name a file in the server's own root).
    `i=0; while [ ! -S ${q(`${dir}/nfs.sock`)} ]; do i=$((i+1)); [ $i -lt 300 ] || { echo 'socat did not listen on its socket' >&2; exit 1; }; sleep 0.1; done`,
    'cd "$R" && mkdir old && pivot_root . old && /usr/bin/umount -l /old && cd /',
    // ganesha logs into its own tmpfs (bounded), not to a file of the host.
    'exec < /dev/null > /dev/null 2>&1',
    `exec /usr/bin/setpriv --bounding-set -all,${ganeshaCaps.map((c) => `+${c}`).join(',')} /usr/bin/ganesha.nfsd -F -L ${q(`${dir}/ganesha.log`)} -f ${q(`${dir}/ganesha.conf`)} -p ${q(`${dir}/ganesha.pid`)}`,
    '',
  ];
  return lines.join('\n');
}

/** One NFS NULL call over the unix socket: true when ganesha itself answered (socat alone closes the connection). */
export async function nfsAnswers(socket: string, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socket);
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    const call = Buffer.alloc(44);
    call.writeUInt32BE(0x80000000 + 40, 0);
    // xid, CALL, RPC 2, NFS, v4, NULL, AUTH_NONE credential and verifier.
    [0x67660001, 0, 2, 100003, 4, 0, 0, 0, 0, 0].forEach((v, i) => call.writeUInt32BE(v, 4 + i * 4));
    let got = Buffer.alloc(0);
    s.on('connect', () => s.write(call));
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      // record mark, xid, REPLY (1), MSG_ACCEPTED (0), verifier (flavor, length 0), SUCCESS (0)
      if (got.length >= 28) done(got.readUInt32BE(4) === 0x67660001 && got.readUInt32BE(8) === 1 && got.readUInt32BE(12) === 0 && got.readUInt32BE(24) === 0);
    });
    s.on('error', () => done(false));
    s.on('close', () => done(false));
    s.setTimeout(timeoutMs, () => done(false));
  });
}

export async function startNfsServer(dir: string, exports: NfsExport[], anon: { uid: number; gid: number }, signal?: AbortSignal): Promise<NfsServer> {
  for (const p of [dir, ...exports.map((e) => e.seed)]) {
    if (!safePath.test(p)) throw new Error(`unsafe NFS server path: ${p}`);
  }
  for (const e of exports) if (!/^[a-z][a-z0-9-]*$/.test(e.name)) throw new Error(`unsafe NFS export name: ${e.name}`);
  // A folder of our own made now (in the private work folder), files created new: nothing followed.
  await mkdir(dir, { mode: 0o700 });
  await writeFile(join(dir, 'ganesha.conf'), ganeshaConfig(dir, exports, anon), { mode: 0o600, flag: 'wx' });
  // What the script itself says until ganesha starts (ganesha logs in its own filesystem).
  const logFile = join(dir, 'fence.log');
  const socket = join(dir, 'nfs.sock');
  if (Buffer.byteLength(socket) > 107) throw new UserError(`the rehearsal's NFS socket path is too long for a unix socket: ${socket}`, { hint: 'use a shorter cache folder (XDG_CACHE_HOME)' });
  const child = start(['setpriv', '--pdeathsig', 'KILL', 'unshare', '--net', '--mount', '--pid', '--fork', '--kill-child=SIGKILL', '--propagation', 'private', 'sh', '-c', fenceScript(dir, exports)],
    { stderrFile: logFile, stdoutFile: join(dir, 'fence.out'), ...(signal ? { cancelSignal: signal } : {}) });
  let exited = false;
  void child.then(() => (exited = true), () => (exited = true));
  /** ganesha's PID on the host: unshare's one child. */
  const serverPid = async (): Promise<number | undefined> => {
    const text = await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').catch(() => '');
    const pid = Number(text.trim().split(/\s+/)[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  };
  let pid: number | undefined;
  const stop = async () => {
    const inner = exited ? undefined : (pid ?? (await serverPid()));
    // Nothing of the server is kept: no orderly shutdown (ganesha's takes 6 s) to wait for.
    // (Once unshare has ended, ganesha's PID may be another process's: never signalled then.)
    if (inner && !exited) {
      try {
        process.kill(inner, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    // unshare ignores SIGTERM while it waits for its child; killed, it takes ganesha along (--kill-child).
    if (!exited) {
      await Promise.race([child.catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
      if (!exited) child.kill('SIGKILL');
      await child.catch(() => undefined);
    }
    // --kill-child killed ganesha; wait until it is gone (its namespaces go with it).
    for (let i = 0; inner && i < 50 && (await readFile(`/proc/${inner}/cmdline`).then(() => true, () => false)); i += 1) {
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  // A slow host gets time while the server starts; one that exited is reported at once.
  for (const until = Date.now() + 2 * 60_000; Date.now() < until && !exited;) {
    if (await nfsAnswers(socket)) {
      pid = await serverPid();
      if (pid) {
        const server = pid;
        return {
          socket,
          stop,
          exportPath: (name) => {
            if (exited) throw new UserError('the rehearsal\'s NFS server stopped before the job\'s files were read', { hint: `its log is gone with it; the start's messages: ${logFile}` });
            return `/proc/${server}/root/exports/${name}`;
          },
        };
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  // ganesha's own log is in its filesystem: read while it is there.
  const inner = exited ? undefined : await serverPid();
  const ganeshaSaid = inner ? await readFile(`/proc/${inner}/root${dir}/ganesha.log`, 'utf8').catch(() => '') : '';
  await stop();
  const scriptSaid = await readFile(logFile, 'utf8').catch(() => '');
  const said = `${scriptSaid}\n${ganeshaSaid.split('\n').slice(-200).join('\n')}`;
  const result = await child.catch((e: unknown) => e as { cause?: { code?: string } });
  if ((result as { cause?: { code?: string } })?.cause?.code === 'ENOENT') {
    throw new UserError('unshare not found: the rehearsal fences its NFS server in namespaces of its own', { hint: 'apt-get install util-linux' });
  }
  const missing = /(ganesha\.nfsd|socat|libfsalvfs\.so)[^\n]*(No such file|not found|cannot stat)/.exec(scriptSaid);
  if (missing) {
    throw new UserError(`${missing[1]} is missing: the rehearsal serves the cluster's NFS exports with nfs-ganesha through socat`, { hint: 'apt-get install nfs-ganesha nfs-ganesha-vfs socat' });
  }
  throw new UserError('the rehearsal\'s NFS server did not start', {
    hint: `last lines of ${logFile}:\n${said.trim().split('\n').filter((l) => !/DBUS|krb5|principal nfs/.test(l)).slice(-5).join('\n')}`,
  });
}

/** Make a seed folder owned by uid:gid with mode, as the cluster's share would be. */
export async function makeExportDir(path: string, uid: number, gid: number, mode: number): Promise<void> {
  await mkdir(path, { recursive: true });
  await chown(path, uid, gid);
  await chmod(path, mode);
}
