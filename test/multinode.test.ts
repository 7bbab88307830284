/**
 * The multi-node rehearsal's pure parts: node names, addresses and MACs, the
 * qemu link between the VMs, the network-config and user-data each VM gets,
 * the node file, and the verdicts on the MPI job and ib_send_bw. The real
 * two-VM run is in vrdma.test.ts.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadClusterOrThrow } from '../src/cluster/load.ts';
import { subnetProblem } from '../src/cluster/schema.ts';
import { defaultLayout } from '../src/profile/schema.ts';
import { mirrorForwards, mirrorHostsLines } from '../src/rehearse/mirror.ts';
import { hubArgs, hostMemoryProblem, mpiSiteCommand, mpiSiteDir, mpiSiteSettings, networkConfig, nodeFile, nodeSpecs, parseRanks, privateNetdev, rankProblem, userMac } from '../src/rehearse/nodes.ts';
import { cloudLocaldsArgs, keepField, secondsField } from '../src/rehearse/node-vm.ts';
import { formatRehearsal } from '../src/rehearse/report.ts';
import { ibSendBwLine, rdmaDeviceOf } from '../src/rehearse/rdma.ts';
import { rehearsalUserData } from '../src/rehearse/userdata.ts';
import { qemuArgs } from '../src/vm/qemu-args.ts';

const tmp = await mkdtemp(join(tmpdir(), 'gf-multinode-'));
const t = suite('multi-node rehearsal (pure)');

t('nodes are vnode01.. with .11.. on the subnet and distinct MACs', () => {
  const nodes = nodeSpecs(3, '192.168.77.0/24');
  assert.equal(nodes.map((n) => `${n.name} ${n.address} ${n.mac}`), [
    'vnode01 192.168.77.11 52:54:00:77:00:01', 'vnode02 192.168.77.12 52:54:00:77:00:02', 'vnode03 192.168.77.13 52:54:00:77:00:03',
  ]);
  assert.is(nodeFile(nodes.slice(0, 2), 1), 'vnode01\nvnode02\n');
  assert.is(nodeFile(nodes.slice(0, 2), 2), 'vnode01\nvnode01\nvnode02\nvnode02\n', 'one line per slot, as Torque writes it');
});

t('the private segment: unix datagram sockets in the private folder; two VMs each the other\'s mirror, more through a qemu hub', () => {
  const [a, b, c] = nodeSpecs(3, '10.9.8.0/24');
  assert.is(privateNetdev(a!, 2, '/w/seg'), 'dgram,id=net1,local.type=unix,local.path=/w/seg/link-1.sock,remote.type=unix,remote.path=/w/seg/link-2.sock');
  assert.is(privateNetdev(b!, 2, '/w/seg'), 'dgram,id=net1,local.type=unix,local.path=/w/seg/link-2.sock,remote.type=unix,remote.path=/w/seg/link-1.sock');
  assert.is(privateNetdev(c!, 3, '/w/seg'), 'dgram,id=net1,local.type=unix,local.path=/w/seg/vnode03.sock,remote.type=unix,remote.path=/w/seg/hub-vnode03.sock');
  assert.is(privateNetdev(a!, 2, '/w,x'), 'dgram,id=net1,local.type=unix,local.path=/w,,x/link-1.sock,remote.type=unix,remote.path=/w,,x/link-2.sock', 'a comma in the folder is doubled');
  const hub = hubArgs([a!, b!, c!], '/w/seg');
  assert.equal(hub.slice(0, 9), ['setpriv', '--pdeathsig', 'KILL', 'qemu-system-x86_64', '-machine', 'none', '-nodefaults', '-display', 'none'], 'dies with guestforge');
  assert.ok(hub.includes('dgram,id=link3,local.type=unix,local.path=/w/seg/hub-vnode03.sock,remote.type=unix,remote.path=/w/seg/vnode03.sock'), hub.join(' '));
  assert.ok(hub.includes('hubport,id=port3,hubid=0,netdev=link3'), hub.join(' '));
  assert.not.ok(hub.some((x) => /inet|mcast|127\.0\.0\.1/.test(x)), 'nothing on an address');
  const argv = qemuArgs({
    disk: '/w/d.qcow2', diskFormat: 'qcow2', memoryMiB: 1024, cpus: 1, accel: 'tcg', serialLog: '/w/s', qmpSocket: '/w/q', unsafeCache: true,
    privateNic: { netdev: privateNetdev(a!, 2, '/w/seg'), mac: a!.mac, userMac },
    guestForwards: [{ address: '10.0.2.100', port: 2049, command: ['socat', 'STDIO', 'UNIX-CONNECT:/w/my nfs,1.sock'] }],
  });
  const devices = argv.filter((_, i) => argv[i - 1] === '-device');
  assert.ok(devices.includes('virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56'), devices.join(' '));
  assert.ok(devices.includes('virtio-net-pci,netdev=net1,mac=52:54:00:77:00:01'), devices.join(' '));
  assert.is(argv.filter((a) => a === '-netdev').length, 2);
  // The NFS server is reached by a command slirp starts per connection, quoted for its shell-like split, commas doubled.
  assert.match(argv.find((x) => x.startsWith('user,id=net0'))!, /,guestfwd=tcp:10\.0\.2\.100:2049-cmd:socat STDIO 'UNIX-CONNECT:\/w\/my nfs,,1\.sock'$/);
});

t('each VM: network-config by MAC, its hostname, every node in /etc/hosts, Open MPI on the private subnet, the checks told its NIC', async () => {
  const cluster = await loadClusterOrThrow();
  const nodes = nodeSpecs(2, cluster.nodes.subnet);
  assert.equal(networkConfig(nodes[1]!), {
    version: 2,
    ethernets: {
      user: { match: { macaddress: userMac }, dhcp4: true },
      cluster: { match: { macaddress: '52:54:00:77:00:02' }, addresses: ['192.168.77.12/24'] },
    },
  });
  const ud = rehearsalUserData(cluster, { nonce: 'N', checks: '#!/bin/sh\n', layout: defaultLayout, role: { node: nodes[1]!, all: nodes, subnet: cluster.nodes.subnet } }) as Record<string, any>;
  assert.is(ud.hostname, 'vnode02');
  const files = ud.write_files as { path: string; content: string; append?: boolean }[];
  assert.equal(files.find((f) => f.path === '/etc/hosts'), { path: '/etc/hosts', append: true, content: '192.168.77.11 vnode01\n192.168.77.12 vnode02\n' });
  assert.match(files.find((f) => f.path === '/var/lib/guestforge/openmpi/ompi5.conf')!.content, /^btl_tcp_if_include = 192\.168\.77\.0\/24$/m);
  assert.equal((ud.runcmd as string[][]).at(-2), mpiSiteCommand(), 'the settings are put in place before the checks run');
  assert.match(files.find((f) => f.path.endsWith('rehearse-checks.sh'))!.content, /^PRIVATE_MAC=52:54:00:77:00:02\nPRIVATE_ADDR=192\.168\.77\.12$/m);
  const single = rehearsalUserData(cluster, { nonce: 'N', checks: '#!/bin/sh\n', layout: defaultLayout }) as Record<string, any>;
  assert.equal((single.mounts as string[][])[0]!.slice(0, 4), ['10.0.2.100:/home', '/home/jobuser', 'nfs4', 'vers=4.1,port=2049,_netdev'], 'the NFS server as slirp forwards it, not the host');
  assert.is(single.hostname, undefined, 'one VM keeps the image\'s hostname, as before');
  assert.not.ok((single.write_files as { path: string }[]).some((f) => f.path === '/etc/hosts'));
  // Host keys as vTorque's runcmd makes them (the whole openssh-server postinst again), or only the missing ones.
  assert.match((single.runcmd as string[][])[0]!.join(' '), /^sh -c dpkg-reconfigure -f noninteractive openssh-server /);
  const keygen = rehearsalUserData({ ...cluster, seed: { ...cluster.seed, hostKeys: 'ssh-keygen' } }, { nonce: 'N', checks: '#!/bin/sh\n', layout: defaultLayout }) as Record<string, any>;
  assert.equal((keygen.runcmd as string[][])[0], ['ssh-keygen', '-A']);
  assert.equal((keygen.runcmd as string[][]).slice(1), (single.runcmd as string[][]).slice(1), 'nothing else changes');
  assert.equal(cloudLocaldsArgs('/w/seed.img', '/w/ud', undefined, '/w/nc'), ['cloud-localds', '--disk-format', 'raw', '--filesystem', 'iso9660', '--network-config=/w/nc', '/w/seed.img', '/w/ud']);
});

t('mirrors the restricted guests may reach: one address per host name, a forward per port, /etc/hosts lines; addresses, other schemes and credentials handled', async () => {
  const { forwards, skipped } = mirrorForwards([
    'http://mirror.example/debian', 'http://mirror.example/debian-security', 'https://mirror.example/x', 'http://u:secret@other.example:8080/debian?token=t',
    'http://192.0.2.7/debian', 'file:///srv/repo', 'ftp://old.example/debian', 'not a url',
  ]);
  assert.equal(forwards, [
    { host: 'mirror.example', address: '10.0.2.101', port: 80 },
    { host: 'mirror.example', address: '10.0.2.101', port: 443 },
    { host: 'other.example', address: '10.0.2.102', port: 8080 },
  ]);
  assert.equal(skipped, [
    'http://192.0.2.7/debian: a mirror named by address, not by name, cannot be forwarded',
    'ftp://old.example/debian: only http and https mirrors are forwarded',
    '<redacted: not a URL>: not a URL',
  ]);
  assert.not.match(skipped.join(' '), /secret|token=t/);
  assert.is(mirrorHostsLines(forwards), '10.0.2.101 mirror.example\n10.0.2.102 other.example\n');
  const ud = rehearsalUserData(await loadClusterOrThrow(), { nonce: 'N', checks: '#!/bin/sh\n', layout: defaultLayout, mirrorHosts: mirrorHostsLines(forwards) }) as Record<string, any>;
  assert.equal((ud.write_files as { path: string }[]).find((f) => f.path === '/etc/hosts'), { path: '/etc/hosts', append: true, content: '10.0.2.101 mirror.example\n10.0.2.102 other.example\n' });
});

t('Open MPI site settings: Open MPI 5 gets sm and PRRTE\'s own file, Open MPI 4 vader and ORTE\'s oob in one file', async () => {
  const s = mpiSiteSettings('192.168.77.0/24');
  assert.match(s.ompi5, /^btl = tcp,self,sm$/m);
  assert.not.match(s.ompi5, /vader|oob_/);
  assert.match(s.prte, /^oob_tcp_if_include = 192\.168\.77\.0\/24$/m);
  assert.match(s.ompi4, /^btl = tcp,self,vader$/m);
  assert.match(s.ompi4, /^oob_tcp_if_include = 192\.168\.77\.0\/24$/m);
  // The command itself, run by sh on two fake roots: one with PRRTE's file (Open MPI 5), one without.
  for (const five of [true, false]) {
    const root = await mkdtemp(join(tmpdir(), 'gf-ompi-'));
    await mkdir(join(root, mpiSiteDir), { recursive: true });
    for (const [name, content] of Object.entries(s)) await writeFile(join(root, mpiSiteDir, `${name}.conf`), content);
    await mkdir(join(root, 'etc', 'openmpi'), { recursive: true });
    await writeFile(join(root, 'etc', 'openmpi', 'openmpi-mca-params.conf'), 'pml = ^ucx\n');
    if (five) await writeFile(join(root, 'etc', 'openmpi', 'prte-mca-params.conf'), '# shipped\n');
    const [sh, flag, script] = mpiSiteCommand(root);
    await execa(sh!, [flag!, script!]);
    const mca = await readFile(join(root, 'etc', 'openmpi', 'openmpi-mca-params.conf'), 'utf8');
    assert.ok(mca.startsWith('pml = ^ucx\n'), 'the shipped settings stay; ours follow and win');
    assert.match(mca, five ? /btl = tcp,self,sm/ : /btl = tcp,self,vader/);
    if (five) assert.match(await readFile(join(root, 'etc', 'openmpi', 'prte-mca-params.conf'), 'utf8'), /^# shipped\n[\s\S]*oob_tcp_if_include = 192/);
    await rm(root, { recursive: true, force: true });
  }
});

t('the MPI verdict: every rank once, from every node', () => {
  const out = 'compiling\nrank 1 of 2 on vnode02 (allreduce of the ranks: 1)\nrank 0 of 2 on vnode01 (allreduce of the ranks: 1)\n';
  assert.is(rankProblem(parseRanks(out), 2, ['vnode01', 'vnode02']), undefined);
  assert.match(rankProblem(parseRanks('rank 0 of 2 on vnode01\nrank 1 of 2 on vnode01\n'), 2, ['vnode01', 'vnode02']) ?? '', /no rank ran on vnode02/);
  assert.match(rankProblem(parseRanks('rank 0 of 1 on vnode01\n'), 2, ['vnode01', 'vnode02']) ?? '', /1 rank line\(s\), want 2/);
  assert.match(rankProblem(parseRanks('rank 0 of 2 on a\nrank 0 of 2 on b\n'), 2, ['a', 'b']) ?? '', /want 0\.\.1 of 2/);
});

t('ib_send_bw: the result line is found among its banner', () => {
  const out = [' #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]', ' 65536      1000             33.21              31.02  \t\t   0.000496', '---'].join('\n');
  assert.is(ibSendBwLine(out), '65536 1000 33.21 31.02 0.000496');
  assert.is(ibSendBwLine('Couldn\'t connect to 192.168.77.12:18515'), undefined);
});

t('the rxe device for ib_send_bw: the field the guest handed over (a DATA line), only when it is a plain name', () => {
  const node = (fields?: Record<string, string>) => ({ data: new Map(fields ? [['vrdma.rxe-private', fields]] : []) });
  assert.is(rdmaDeviceOf(node({ device: 'rxe_cluster' })), 'rxe_cluster');
  assert.is(rdmaDeviceOf(node()), undefined, 'no field: not read out of the check\'s words');
  for (const hostile of ['rxe0;reboot', '$(id)', 'a b', '']) assert.is(rdmaDeviceOf(node({ device: hostile })), undefined, hostile);
  // What a guest hands over is bounded: 16 checks of 16 fields, values of 256 characters.
  const flooded = { data: new Map<string, Record<string, string>>() };
  for (let i = 0; i < 40; i += 1) for (let k = 0; k < 40; k += 1) keepField(flooded, `check${i}`, `key${k}`, 'v');
  keepField(flooded, 'check0', 'long', 'x'.repeat(257));
  assert.is(flooded.data.size, 16);
  assert.is(Object.keys(flooded.data.get('check0')!).length, 16);
  keepField(flooded, 'check0', 'key0', 'again');
  assert.is(flooded.data.get('check0')!.key0, 'again', 'a known field may be said again');
});

t('the cluster\'s own costs: seconds the guest handed over, only plain figures, shown as shares of cloud-init done', () => {
  const node = (seconds?: string) => ({ data: new Map(seconds === undefined ? [] : [['cloud-init.packages', { seconds }]]) });
  assert.is(secondsField(node('51.234'), 'cloud-init.packages'), 51_234);
  assert.is(secondsField(node('12'), 'cloud-init.packages'), 12_000);
  assert.is(secondsField(node(), 'cloud-init.packages'), undefined);
  for (const hostile of ['1e9', '-3', '99999', 'NaN', '1.5;reboot', '', ' 3']) assert.is(secondsField(node(hostile), 'cloud-init.packages'), undefined, hostile);
  const lines = formatRehearsal({ ok: true, checks: [], serialLog: 'c.log', cloudInitDoneMs: 200_000, clusterCost: { packagesMs: 110_000, runcmdMs: 5_000 } });
  assert.ok(lines.includes('of cloud-init done, the cluster\'s user-data: boot-time packages 110.0 s (55%), runcmd before the checks (host keys, sshd restart) 5.0 s (3%)'), lines.join('\n'));
  assert.not.ok(formatRehearsal({ ok: true, checks: [], serialLog: 'c.log' }).some((l) => l.includes('user-data:')), 'nothing timed: no line');
});

t('the private subnet: a /24 that is not slirp\'s, loopback or multicast; located when wrong', async () => {
  for (const ok of ['192.168.77.0/24', '10.77.0.0/24', '172.16.5.0/24']) assert.is(subnetProblem(ok), undefined, ok);
  assert.match(subnetProblem('10.0.2.0/24') ?? '', /user network every VM already has/);
  assert.match(subnetProblem('192.168.77.0/16') ?? '', /IPv4 \/24/);
  assert.match(subnetProblem('127.1.2.0/24') ?? '', /not a private network/);
  assert.match(subnetProblem('8.8.8.0/24') ?? '', /not a private network/);
  assert.match(subnetProblem('192.168.077.0/24') ?? '', /no leading zeros/);
  assert.match(subnetProblem('300.1.2.0/24') ?? '', /IPv4 \/24/);
  const file = join(tmp, 'c.yaml');
  await writeFile(file, 'name: c\nnodes:\n  subnet: 10.0.2.0/24\n');
  const error = await loadClusterOrThrow(file).then(() => '', (e: Error & { hint?: string }) => `${e.message}\n${e.hint ?? ''}`);
  assert.match(error, /c\.yaml:3:\d+/);
  assert.match(error, /nodes\.subnet/);
});

t.after(() => rm(tmp, { recursive: true, force: true }));
t('a host that cannot hold N VMs is named with the memory they need', () => {
  const g = 1024 ** 3;
  assert.is(hostMemoryProblem(2, g, 20 * g), undefined);
  assert.is(hostMemoryProblem(8, 4 * g, 20 * g), '8 VMs of 4.0 GiB need about 34.0 GiB (with qemu\'s own 0.3 GiB each), and this host has 20.0 GiB available');
});

t.run();
