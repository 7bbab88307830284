/**
 * The nodes of a multi-node rehearsal and the private segment between them,
 * as pure functions: names (vnode01…), addresses on the cluster's /24, MACs,
 * the NoCloud network-config each VM gets, the node file, and the qemu netdev
 * that joins the VMs through unix sockets in the rehearsal's private folder
 * (no bridge, no tap, no address on the host).
 */
import { posix } from 'node:path';
import { shellWord } from '../util/quote.ts';
import { qemuOptValue } from '../vm/qemu-args.ts';
import type { CloudConfig } from '../cloudinit/yaml.ts';

/** The user (slirp) NIC of every rehearsal VM; each VM has its own slirp, so they may share it. */
export const userMac = '52:54:00:12:34:56';

export interface NodeSpec {
  /** 1-based. */
  index: number;
  name: string;
  address: string;
  mac: string;
}

export function nodeSpecs(count: number, subnet: string): NodeSpec[] {
  const prefix = subnet.replace(/\.0\/24$/, '');
  return Array.from({ length: count }, (_, i) => ({
    index: i + 1,
    name: `vnode${String(i + 1).padStart(2, '0')}`,
    address: `${prefix}.${11 + i}`,
    mac: `52:54:00:77:00:${(i + 1).toString(16).padStart(2, '0')}`,
  }));
}

/**
 * The qemu -netdev of a node on the private segment: unix datagram sockets in
 * the rehearsal's private folder (0700), so no other local user can send a
 * frame into the segment or read one from it. Two nodes: each end the other's
 * mirror. More: each node's link ends at its own port of a hub (hubArgs).
 */
export function privateNetdev(node: NodeSpec, count: number, dir: string): string {
  const sock = (name: string) => qemuOptValue(posix.join(dir, `${name}.sock`));
  if (count === 2) {
    const [mine, theirs] = node.index === 1 ? ['link-1', 'link-2'] : ['link-2', 'link-1'];
    return `dgram,id=net1,local.type=unix,local.path=${sock(mine)},remote.type=unix,remote.path=${sock(theirs)}`;
  }
  return `dgram,id=net1,local.type=unix,local.path=${sock(node.name)},remote.type=unix,remote.path=${sock(`hub-${node.name}`)}`;
}

/**
 * Pure: the argv of the segment's hub for three nodes or more: a qemu with no
 * machine whose only devices are one datagram link per node, each joined to
 * hub 0 (qemu repeats every frame to the other ports, like a switch of old).
 * It dies with guestforge (`setpriv --pdeathsig KILL`), even one killed by
 * SIGKILL that could not stop it: no hub is left holding the segment's sockets.
 */
export function hubArgs(nodes: NodeSpec[], dir: string): string[] {
  const sock = (name: string) => qemuOptValue(posix.join(dir, `${name}.sock`));
  return ['setpriv', '--pdeathsig', 'KILL', 'qemu-system-x86_64', '-machine', 'none', '-nodefaults', '-display', 'none', ...nodes.flatMap((n) => [
    '-netdev', `dgram,id=link${n.index},local.type=unix,local.path=${sock(`hub-${n.name}`)},remote.type=unix,remote.path=${sock(n.name)}`,
    '-netdev', `hubport,id=port${n.index},hubid=0,netdev=link${n.index}`,
  ])];
}

/** NoCloud network-config (v2): DHCP on the user NIC, the node's static address on the private one. */
export function networkConfig(node: NodeSpec): CloudConfig {
  return {
    version: 2,
    ethernets: {
      user: { match: { macaddress: userMac }, dhcp4: true },
      cluster: { match: { macaddress: node.mac }, addresses: [`${node.address}/24`] },
    },
  };
}

/** /etc/hosts lines every node gets, so ranks reach each other by name. */
export function hostsLines(nodes: NodeSpec[]): string {
  return nodes.map((n) => `${n.address} ${n.name}`).join('\n') + '\n';
}

/** PBS_NODEFILE: one line per slot, as Torque writes it (here one slot per node). */
export function nodeFile(nodes: NodeSpec[], slotsPerNode: number): string {
  return nodes.flatMap((n) => Array.from({ length: slotsPerNode }, () => n.name)).join('\n') + '\n';
}

/**
 * Open MPI's site settings the cluster would ship: MPI traffic and the launcher's daemons on the
 * private segment only (every VM has the same slirp address). Open MPI 4 (Debian 12) reads all of
 * it from openmpi-mca-params.conf, its launcher (ORTE) included, and calls its shared-memory BTL
 * vader. Open MPI 5 (Debian 13) launches through PRRTE, which reads its own prte-mca-params.conf,
 * and calls that BTL sm; PMIx needs nothing: it talks to its local daemon only.
 */
export function mpiSiteSettings(subnet: string): { ompi4: string; ompi5: string; prte: string } {
  const head = '# guestforge rehearse: the cluster network is the private segment';
  const mpi = (shm: string) => [head, `btl_tcp_if_include = ${subnet}`, 'pml = ob1', `btl = tcp,self,${shm}`];
  return {
    ompi4: [...mpi('vader'), `oob_tcp_if_include = ${subnet}`, ''].join('\n'),
    ompi5: [...mpi('sm'), ''].join('\n'),
    prte: [head, `oob_tcp_if_include = ${subnet}`, ''].join('\n'),
  };
}

/** Where mpiSiteSettings' pieces wait in the guest until mpiSiteCommand picks the ones for its Open MPI. */
export const mpiSiteDir = '/var/lib/guestforge/openmpi';

/**
 * Pure: the runcmd that appends the settings of the Open MPI the VM has (after the cluster's boot-time
 * packages): PRRTE's own file marks Open MPI 5.
 */
export function mpiSiteCommand(root = ''): string[] {
  const conf = shellWord(`${root}/etc/openmpi`);
  const dir = shellWord(`${root}${mpiSiteDir}`);
  return ['sh', '-c', [
    `if [ -e ${conf}/prte-mca-params.conf ]; then`,
    `cat ${dir}/ompi5.conf >> ${conf}/openmpi-mca-params.conf && cat ${dir}/prte.conf >> ${conf}/prte-mca-params.conf;`,
    `else mkdir -p ${conf} && cat ${dir}/ompi4.conf >> ${conf}/openmpi-mca-params.conf; fi`,
  ].join(' ')];
}

export interface RankLine {
  rank: number;
  size: number;
  host: string;
}

/** The sample MPI job's output: one "rank R of N on HOST" line per rank. */
export function parseRanks(output: string): RankLine[] {
  const ranks: RankLine[] = [];
  for (const m of output.matchAll(/^rank (\d+) of (\d+) on (\S+)/gm)) ranks.push({ rank: Number(m[1]), size: Number(m[2]), host: m[3]! });
  return ranks;
}

/** Pure: the verdict on the MPI job's ranks: every rank once, from `count` different hosts. */
export function rankProblem(ranks: RankLine[], count: number, expectedHosts: string[]): string | undefined {
  if (ranks.length !== count) return `${ranks.length} rank line(s), want ${count}`;
  const seen = new Set(ranks.map((r) => r.rank));
  if (seen.size !== count || ranks.some((r) => r.size !== count || r.rank >= count)) return `ranks ${ranks.map((r) => `${r.rank}/${r.size}`).join(', ')}, want 0..${count - 1} of ${count}`;
  const hosts = new Set(ranks.map((r) => r.host));
  const missing = expectedHosts.filter((h) => !hosts.has(h));
  if (missing.length > 0) return `no rank ran on ${missing.join(', ')} (hosts: ${[...hosts].join(', ')})`;
  return undefined;
}

/** What qemu under TCG takes beyond the guest's memory (its translation cache, devices), per VM. */
const qemuOverhead = 256 * 1024 ** 2;

/** Pure: why the host cannot hold `count` VMs of `memory` bytes each with `available` bytes free, or undefined. */
export function hostMemoryProblem(count: number, memory: number, available: number, what = 'available'): string | undefined {
  const needed = count * (memory + qemuOverhead);
  if (needed <= available) return undefined;
  const gib = (n: number) => `${(n / 1024 ** 3).toFixed(1)} GiB`;
  return `${count} VM${count > 1 ? 's' : ''} of ${gib(memory)} need about ${gib(needed)} (with qemu's own ${gib(qemuOverhead)} each), and this host has ${gib(available)} ${what}`;
}
