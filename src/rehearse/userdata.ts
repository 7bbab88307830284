/**
 * The runtime user-data a cluster node hands each job VM, written by our own
 * template after the structure vTorque's prologue uses: bootcmd makes the job
 * owner with the cluster's ids and the job folders, `packages` installs what
 * the cluster wants at every boot, `mounts` puts the NFS exports in place,
 * runcmd makes SSH host keys and restarts sshd; then our checks report.
 */
import { posix } from 'node:path';
import type { Cluster, NfsExportName } from '../cluster/schema.ts';
import type { CloudConfig } from '../cloudinit/yaml.ts';
import { inGuestLayoutChecks, type Layout } from '../policy/layout.ts';
import { nfsFromGuest } from './nfs.ts';
import { hostsLines, mpiSiteCommand, mpiSiteDir, mpiSiteSettings, type NodeSpec } from './nodes.ts';

/** A node of a multi-node rehearsal: its name and address, and every node (for /etc/hosts). */
export interface NodeRole {
  node: NodeSpec;
  all: NodeSpec[];
  subnet: string;
}

export const checksPath = '/var/lib/guestforge/rehearse-checks.sh';

export const exportNames: NfsExportName[] = ['home', 'workspace', 'software'];

export function mountPointOf(cluster: Cluster, name: NfsExportName): string {
  return posix.normalize(cluster.nfs[name].mount.replaceAll('{owner}', cluster.owner.name));
}

/** NFSv4 pseudo path of an export on the rehearsal's server. */
export function pseudoOf(name: NfsExportName): string {
  return `/${name}`;
}

export function rehearsalUserData(cluster: Cluster, options: { nonce: string; checks: string; layout: Layout; role?: NodeRole; mirrorHosts?: string }): CloudConfig {
  const { owner } = cluster;
  const home = mountPointOf(cluster, 'home');
  const workspace = mountPointOf(cluster, 'workspace');
  const vars = [
    `NONCE=${options.nonce}`,
    `OWNER=${owner.name}`,
    `OWNER_UID=${owner.uid}`,
    `OWNER_GID=${owner.gid}`,
    `MOUNTS="${exportNames.map((n) => `${n}:${mountPointOf(cluster, n)}`).join(' ')}"`,
    ...(options.role ? [`PRIVATE_MAC=${options.role.node.mac}`, `PRIVATE_ADDR=${options.role.node.address}`] : []),
  ].join('\n');
  const layout = { ...options.layout, workspace };
  const script = options.checks.replace(/^(#!.*\n)/, `$1${vars}\n`) + `${inGuestLayoutChecks(layout)}\n` +
    `echo "GUESTFORGE-RESULT:$NONCE:$([ $failed = 0 ] && echo ok || echo error)" > "$console"\n`;
  const config: CloudConfig = {
    bootcmd: [
      ['sh', '-c', `getent group ${owner.gid} > /dev/null || groupadd -g ${owner.gid} ${owner.name}`],
      ['sh', '-c', `id -u ${owner.name} > /dev/null 2>&1 || useradd -u ${owner.uid} -g ${owner.gid} -s /bin/bash -M -d ${home} ${owner.name}`],
      ['mkdir', '-p', workspace, '/var/spool/torque', home],
    ],
    mounts: exportNames.map((n) => [
      `${nfsFromGuest.address}:${pseudoOf(n)}`, mountPointOf(cluster, n), 'nfs4', `vers=4.1,port=${nfsFromGuest.port},_netdev`, '0', '0',
    ]),
    write_files: [
      { path: checksPath, permissions: '0755', content: script },
      // What the cluster's own nodes have: every node by name, and Open MPI told which network is the cluster's.
      // The package mirrors by the addresses the restricted user network forwards (rehearse/mirror.ts).
      ...(options.role || options.mirrorHosts ? [{ path: '/etc/hosts', append: true, content: `${options.role ? hostsLines(options.role.all) : ''}${options.mirrorHosts ?? ''}` }] : []),
      ...(options.role ? [
        ...Object.entries(mpiSiteSettings(options.role.subnet)).map(([name, content]) => ({ path: `${mpiSiteDir}/${name}.conf`, permissions: '0644', content })),
      ] : []),
    ],
    runcmd: [
      cluster.seed.hostKeys === 'ssh-keygen'
        ? ['ssh-keygen', '-A']
        : ['sh', '-c', 'dpkg-reconfigure -f noninteractive openssh-server > /dev/null 2>&1 || ssh-keygen -A'],
      ['sh', '-c', 'systemctl restart ssh || systemctl restart sshd'],
      ...(options.role ? [mpiSiteCommand()] : []),
      ['sh', checksPath],
    ],
  };
  if (cluster.bootPackages.length > 0) config.packages = [...cluster.bootPackages];
  if (options.role) config.hostname = options.role.node.name;
  return config;
}
