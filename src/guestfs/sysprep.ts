/**
 * The seal stage's offline clean-up as records, virt-sysprep's way: each operation is its shell
 * lines (run in the guest's root by one guestfish `sh` call, under `set -e`), what it cleans and
 * why, and the verify rule that checks its result where verify can see it. The script, its cache
 * key, docs/verify.md's table and `verify --explain` all come from these; the script carries only
 * each operation's id and lines, so rewording its text does not change the seal stage's key.
 */
export interface SysprepOperation {
  /** virt-sysprep's name for the same operation where it has one. */
  id: string;
  what: string;
  why: string;
  /** The verify rule that fails when this operation did not happen. */
  rule?: string;
  /** Shell lines; `rm -f` of a missing file succeeds already, so any failure (read-only, immutable) is real. */
  script: string;
}

export const sysprepOperations: readonly SysprepOperation[] = [
  {
    id: 'cloud-init',
    what: 'cloud-init\'s instance state, seed copy, semaphores and handlers removed (`cloud-init clean`)',
    why: 'the cluster boots every VM with the same instance-id, so left-over instance state would silently skip per-instance modules (runcmd, mounts)',
    rule: 'hygiene.cloud-init-state',
    script: 'rm -rf /var/lib/cloud/instances /var/lib/cloud/instance /var/lib/cloud/seed \\\n       /var/lib/cloud/sem /var/lib/cloud/data /var/lib/cloud/handlers',
  },
  {
    id: 'machine-id',
    what: '/etc/machine-id emptied (kept as a file), a D-Bus machine-id of its own removed',
    why: 'each VM gets its own machine-id at first boot: clones sharing one share DHCP client ids and journals',
    rule: 'hygiene.machine-id',
    script: 'if [ -e /etc/machine-id ]; then : > /etc/machine-id; fi\nif [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then rm -f /var/lib/dbus/machine-id; fi',
  },
  {
    id: 'ssh-hostkeys',
    what: 'SSH host keys removed',
    why: 'each VM makes its own at first boot (cloud-init\'s ssh module); clones must not share them',
    rule: 'hygiene.ssh-host-keys',
    script: 'rm -f /etc/ssh/ssh_host_*',
  },
  {
    id: 'random-seed',
    what: 'systemd\'s random seed and credential secret removed',
    why: 'every VM would start its entropy pool, and seal its credentials, from the same secret',
    script: 'rm -f /var/lib/systemd/random-seed /var/lib/systemd/credential.secret',
  },
  {
    id: 'dhcp-client-state',
    what: 'DHCP leases (dhclient, NetworkManager, networkd) removed',
    why: 'a lease from the build VM\'s network is wrong on every node',
    script: 'rm -f /var/lib/dhcp/*.leases /var/lib/NetworkManager/*.lease* /var/lib/systemd/network/*',
  },
  {
    id: 'net-config',
    what: 'the network files cloud-init wrote for the build VM\'s own NIC removed (cloud-init 24+ writes networkd\'s into /etc, not /run)',
    why: 'each VM\'s first boot renders its own from its seed; the build VM\'s would name a NIC the nodes may not have',
    script: 'rm -f /etc/systemd/network/10-cloud-init-*.network /etc/NetworkManager/system-connections/cloud-init-*.nmconnection',
  },
  {
    id: 'package-manager-cache',
    what: 'apt and dnf package lists and caches removed (apt\'s lists folder kept, empty)',
    why: 'large in every copy of the image, and stale by the time a job runs',
    script: 'rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/cache/dnf/* /var/cache/yum/*\nmkdir -p /var/lib/apt/lists/partial',
  },
  {
    id: 'logfiles',
    what: 'logs emptied (kept as files: some daemons will not create them), rotated logs and journals removed',
    why: 'the build\'s logs say nothing about a job and would be shipped to every node',
    script: 'find /var/log -type f \\( -name \'*.gz\' -o -name \'*.[0-9]\' -o -name \'*.old\' \\) -delete\nfind /var/log -type f -exec truncate -s 0 {} +\nrm -rf /var/log/journal/*',
  },
  {
    id: 'bash-history',
    what: 'shell histories and editor state of root and the users removed',
    why: 'what the build typed is nobody\'s business on a node',
    script: 'rm -f /root/.bash_history /root/.lesshst /root/.viminfo /home/*/.bash_history /home/*/.lesshst',
  },
  {
    id: 'tmp-files',
    what: 'guestforge\'s build files and temporary files removed',
    why: 'build leftovers (the build VM\'s scripts under /var/lib/guestforge) are not the image\'s',
    script: 'rm -rf /var/lib/guestforge /tmp/* /tmp/.[!.]* /var/tmp/*',
  },
];

/** The word the script prints when every operation ran. */
export const sysprepDone = 'sysprep-done';

/** Pure: the shell script the seal stage runs in the guest's root, from the operations. */
export function sysprepScript(operations: readonly SysprepOperation[] = sysprepOperations): string {
  return ['# guestforge offline clean-up (src/guestfs/sysprep.ts), run in the guest\'s root by one guestfish `sh` call.', 'set -e',
    ...operations.flatMap((op) => [`# ${op.id}`, op.script]), `echo ${sysprepDone}`, ''].join('\n');
}

/** The operations whose result a verify rule checks. */
export const sysprepOf = (ruleId: string): SysprepOperation[] => sysprepOperations.filter((op) => op.rule === ruleId);
