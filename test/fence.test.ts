/**
 * The rehearsal's fence, attacked for real: the NFS server rehearse starts
 * (real nfs-ganesha in its namespaces) and the private segment's sockets
 * (real qemu, no guest), against a local user (`nobody`, through setpriv)
 * and against a hostile guest (root in the guest sends any AUTH_SYS uid and
 * any file handle: played here by the NFS client in test/fixtures through
 * the same socket slirp's forward uses). Before the fence each attack
 * worked: as `nobody`, a forged handle for the root of the host's disk read
 * a 0600 file in /root and made a folder there. A control test sets a server
 * up the old way (fenced in a network namespace all the same) and shows the
 * same attacks succeed against it.
 */
import { lstat, mkdir, mkdtemp, readFile, readlink, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run, start } from '../src/exec/run.ts';
import { makeExportDir, startNfsServer, type NfsServer } from '../src/rehearse/nfs.ts';
import { hubArgs, nodeSpecs } from '../src/rehearse/nodes.ts';
import { timed } from './helpers/timing.ts';

const probe = resolve(import.meta.dirname, 'fixtures', 'nfs4probe.py');
const python = '/usr/bin/python3';
const tmp = await mkdtemp(join(tmpdir(), 'gf-fence-'));
const owner = { uid: 4242, gid: 4242 };
/** The rehearsal's private work folder, as rehearse makes it. */
const work = join(tmp, 'work');
await mkdir(work, { mode: 0o700 });

interface ProbeResult {
  connect?: string;
  errno?: number;
  status?: string;
  results?: { op: number; status: string; handle?: string; data?: string; type?: number }[];
}

async function nfsProbe(args: string[], as: 'root' | 'nobody' = 'root'): Promise<ProbeResult> {
  const argv = [python, probe, ...args];
  const r = await run(as === 'nobody' ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...argv] : argv, { allowFailure: true, timeoutMs: 30_000 });
  assert.ok(r.stdout.trim().startsWith('{'), `${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as ProbeResult;
}

const handleOf = (r: ProbeResult) => r.results?.find((x) => x.handle)?.handle;

let server: NfsServer;

const t = timed(suite('rehearsal fence'));

t.before(async () => {
  const seed = join(work, 'exports');
  await makeExportDir(join(seed, 'home'), owner.uid, owner.gid, 0o755);
  await writeFile(join(seed, 'home', 'id_ed25519'), 'the owner\'s private key\n', { mode: 0o600 });
  await run(['chown', `${owner.uid}:${owner.gid}`, join(seed, 'home', 'id_ed25519')]);
  await makeExportDir(join(seed, 'workspace'), 0, 0, 0o1777);
  server = await startNfsServer(join(work, 'nfs'), [
    { name: 'home', seed: join(seed, 'home'), ...owner, mode: 0o755 },
    { name: 'workspace', seed: join(seed, 'workspace'), uid: 0, gid: 0, mode: 0o1777 },
  ], owner);
});

t.after(async () => {
  await server?.stop();
  await rm(tmp, { recursive: true, force: true });
});

t('a local user reaches neither the server nor the owner\'s files: its socket is root\'s, and no port serves it on this host', async () => {
  const bySocket = await nfsProbe([`unix:${server.socket}`, 'handle', 'home'], 'nobody');
  assert.is(bySocket.connect, 'PermissionError', JSON.stringify(bySocket));
  // The server's own port, on the host's loopback: nothing of ours listens there (it lives in its network namespace).
  const byPort = await nfsProbe(['127.0.0.1:2049', 'handle', 'home'], 'nobody');
  assert.not.equal(byPort.status, 'OK', JSON.stringify(byPort));
  const listeners = await run(['ss', '-Hltnp'], { allowFailure: true });
  assert.not.match(listeners.stdout, /ganesha/, 'ganesha listens on no socket of the host\'s network');
  // The owner's key is in the server's own filesystem, not in a folder on the host's disk.
  const key = join(server.exportPath('home'), 'id_ed25519');
  assert.is((await stat(key)).uid, owner.uid);
  assert.is((await readFile(key, 'utf8')).trim(), 'the owner\'s private key');
  const read = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'cat', key], { allowFailure: true });
  assert.is.not(read.exitCode, 0, 'nobody cannot read it through /proc either');
});

t('a hostile guest (any uid, any handle) stays inside the exports: a forged handle for the host disk\'s root is stale, root is squashed to the owner', async () => {
  const address = `unix:${server.socket}`;
  const home = await nfsProbe([address, 'handle', 'home']);
  const handle = handleOf(home);
  assert.ok(handle, JSON.stringify(home));
  // The handle the old server accepted: the export's own header, the host root filesystem's fsid, inode 2 generation 0.
  for (const target of ['/', '/root', tmpdir()]) {
    const fsid = (await run(['stat', '-f', '-c', '%i', target])).stdout.trim();
    const forged = (JSON.parse((await run([python, probe, 'x', 'forge', handle!, fsid, '2', '0'])).stdout) as { handle: string }).handle;
    const tried = await nfsProbe([address, 'lookup', forged, 'root']);
    assert.ok(['STALE', 'BADHANDLE'].includes(tried.status ?? ''), `${target}: ${JSON.stringify(tried)}`);
  }
  // Guest root writes as the owner; another uid it claims cannot write into the owner's home.
  assert.is((await nfsProbe([address, 'mkdir', handle!, 'by-guest-root'])).status, 'OK');
  assert.is((await lstat(join(server.exportPath('home'), 'by-guest-root'))).uid, owner.uid, 'root squashed to the owner');
  assert.is((await nfsProbe(['--uid', '0', address, 'mkdir', handle!, 'by-guest-root-2'])).status, 'OK');
  assert.is((await nfsProbe(['--uid', '31337', address, 'mkdir', handle!, 'by-stranger'])).status, 'ACCES');
  // The exports are filesystems of their own, without device nodes or setuid.
  const mounts = await readFile(`/proc/${server.exportPath('home').split('/')[2]}/mounts`, 'utf8');
  const home2 = mounts.split('\n').find((l) => l.split(' ')[1] === '/exports/home');
  assert.match(home2 ?? '', /^gf-nfs-home \/exports\/home tmpfs \S*nosuid,nodev/, mounts);
  assert.not.ok(mounts.split('\n').some((l) => /^\/dev\//.test(l)), `no disk of the host is mounted where the server runs:\n${mounts}`);
});

t('a server a guest took over keeps nothing of the host: no disk mounted, no host file open, no way to mount, mknod or ptrace', async () => {
  const pid = server.exportPath('home').split('/')[2]!;
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const bounding = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(status)![1]}`);
  for (const [name, bit] of [['sys_admin', 21n], ['mknod', 27n], ['sys_ptrace', 19n], ['sys_module', 16n], ['sys_rawio', 17n]] as const) {
    assert.is(bounding & (1n << bit), 0n, `ganesha cannot gain ${name}`);
  }
  assert.ok((bounding & (1n << 2n)) !== 0n, 'it keeps dac_read_search (file handles)');
  // Its standard descriptors are its own /dev/null (the host's log files would be a way back to the host's disk).
  for (const fd of ['0', '1', '2']) assert.is(await readlink(`/proc/${pid}/fd/${fd}`), '/dev/null', `fd ${fd}`);
  // Every process of its namespace works in the server's own root.
  const inNamespace = (await run(['pgrep', '--ns', pid, '--nslist', 'pid'], { allowFailure: true })).stdout.split('\n').filter(Boolean);
  assert.ok(inNamespace.length >= 2, `ganesha and socat: ${inNamespace.join(' ')}`);
  const serverRoot = await realpath(`/proc/${pid}/root`).catch(() => '');
  for (const p of inNamespace) {
    assert.is(await readlink(`/proc/${p}/cwd`), '/', `process ${p} works in /`);
    assert.is(await realpath(`/proc/${p}/root`).catch(() => ''), serverRoot, `process ${p} has the server's root`);
  }
});

t('the private segment takes no frame from a local user: the VMs\' links and the hub are unix sockets in the private folder', async () => {
  const segment = join(work, 'segment');
  await mkdir(segment, { mode: 0o700 });
  const nodes = nodeSpecs(3, '192.168.77.0/24');
  const hub = start(hubArgs(nodes, segment), { stderrFile: join(tmp, 'hub.log') });
  void hub.catch(() => undefined);
  try {
    const sock = join(segment, 'hub-vnode01.sock');
    for (let i = 0; i < 50 && !(await lstat(sock).then(() => true, () => false)); i += 1) await new Promise((r) => setTimeout(r, 100));
    assert.ok((await lstat(sock)).isSocket(), 'the hub listens');
    const inject = `import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ntry:\n  s.sendto(b'\\xff'*60,sys.argv[1]); print('sent')\nexcept OSError as e: print(type(e).__name__)`;
    const asRoot = await run([python, '-c', inject, sock]);
    assert.is(asRoot.stdout.trim(), 'sent', 'the same frame from root (the rehearsal) is taken: the attack below fails for its sender, not its form');
    const asNobody = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', python, '-c', inject, sock], { allowFailure: true });
    assert.is(asNobody.stdout.trim(), 'PermissionError', asNobody.stderr);
  } finally {
    hub.kill('SIGTERM');
    await hub.catch(() => undefined);
  }
});

t('control: the same attacks on a server set up as before the fence (an export in a host folder, no root squash) succeed, so the checks above can fail', async () => {
  // Fenced in a network namespace of its own all the same: the control must not expose this host while the test runs.
  const dir = join(tmp, 'control');
  await mkdir(join(dir, 'export'), { recursive: true, mode: 0o700 });
  await writeFile(join(dir, 'ganesha.conf'), [
    'NFS_CORE_PARAM { Protocols = 4; NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false; }',
    `NFSV4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = "${dir}/recovery"; Only_Numeric_Owners = true; UseGetpwnam = true; }`,
    `EXPORT { Export_Id = 1; Path = "${dir}/export"; Pseudo = "/home"; Access_Type = RW; Squash = No_Root_Squash; Protocols = 4; SecType = sys; FSAL { Name = VFS; } CLIENT { Clients = 127.0.0.1; Access_Type = RW; } }`,
    '',
  ].join('\n'));
  const control = start(['setpriv', '--pdeathsig', 'KILL', 'unshare', '--net', '--fork', '--kill-child=SIGKILL', 'sh', '-c',
    `ip link set lo up && exec ganesha.nfsd -F -L STDERR -f ${dir}/ganesha.conf -p ${dir}/ganesha.pid`], { stderrFile: join(dir, 'ganesha.log') });
  void control.catch(() => undefined);
  try {
    let pid = '';
    for (let i = 0; i < 100 && !pid; i += 1) {
      await new Promise((r) => setTimeout(r, 200));
      pid = (await readFile(`/proc/${control.pid}/task/${control.pid}/children`, 'utf8').catch(() => '')).trim().split(/\s+/)[0] ?? '';
    }
    assert.ok(pid, 'the control server started');
    // As nobody, from inside the control's network (where, before the fence, every local user was).
    const asNobody = async (args: string[]) => {
      for (let i = 0; ; i += 1) {
        const r = await run(['nsenter', `--net=/proc/${pid}/ns/net`, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', python, probe, '127.0.0.1:2049', ...args], { allowFailure: true, timeoutMs: 30_000 });
        const result = JSON.parse(r.stdout) as ProbeResult;
        if (!result.connect || i >= 40) return result;
        await new Promise((res) => setTimeout(res, 500)); // still starting
      }
    };
    const home = await asNobody(['handle', 'home']);
    const handle = handleOf(home);
    assert.ok(handle, JSON.stringify(home));
    const fsid = (await run(['stat', '-f', '-c', '%i', dir])).stdout.trim();
    const forged = (JSON.parse((await run([python, probe, 'x', 'forge', handle!, fsid, '2', '0'])).stdout) as { handle: string }).handle;
    const escaped = await asNobody(['lookup', forged, 'root']);
    assert.is(escaped.status, 'OK', `the forged handle reached /root of the disk that holds ${dir}: ${JSON.stringify(escaped)}`);
    assert.is((await asNobody(['mkdir', handle!, 'by-root'])).status, 'OK');
    assert.is((await lstat(join(dir, 'export', 'by-root'))).uid, 0, 'root was not squashed');
  } finally {
    control.kill('SIGKILL');
    await control.catch(() => undefined);
  }
  // The segment as it was: a datagram to the link's loopback port is taken from anyone.
  const port = 40000 + Math.floor(Math.random() * 20000);
  const old = start(['qemu-system-x86_64', '-machine', 'none', '-nodefaults', '-display', 'none', '-netdev',
    `dgram,id=net1,local.type=inet,local.host=127.0.0.1,local.port=${port},remote.type=inet,remote.host=127.0.0.1,remote.port=${port + 1}`], { stderrFile: join(tmp, 'old-link.log') });
  void old.catch(() => undefined);
  try {
    const inject = `import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ntry:\n  s.sendto(b'\\xff'*60,('127.0.0.1',int(sys.argv[1]))); print('sent')\nexcept OSError as e: print(type(e).__name__)`;
    const asNobody = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', python, '-c', inject, String(port)]);
    assert.is(asNobody.stdout.trim(), 'sent');
  } finally {
    old.kill('SIGKILL');
    await old.catch(() => undefined);
  }
});

t('stopping the server leaves nothing: no ganesha, no socat, no mount', async () => {
  const pid = server.exportPath('home').split('/')[2];
  await server.stop();
  assert.not.ok(await lstat(`/proc/${pid}`).then(() => true, () => false), 'ganesha is gone');
  const left = await run(['pgrep', '-af', 'ganesha.nfsd|socat'], { allowFailure: true });
  assert.equal(left.stdout.split('\n').filter((l) => l.includes(work)), []);
  assert.not.match(await readFile('/proc/self/mountinfo', 'utf8'), /gf-nfs-/);
});

t.run();
