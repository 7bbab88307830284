/**
 * The cluster description `guestforge rehearse` boots an image by: how the
 * batch system makes the seed, the VM it starts, the job owner, what it
 * installs at boot, where NFS exports mount, and the job. One source of
 * truth for types, defaults, docs and schema/cluster.schema.json.
 */
import { z } from 'zod';
import { regexProblem } from '../util/bounded-regex.ts';
import { guestPathProblem, systemPlace } from '../policy/paths.ts';
import { durationPattern, parseSize, sizePattern } from '../profile/units.ts';

/** Words that reach qemu's argv or a shell line: no spaces, commas, quotes. */
const word = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { error: 'expected letters, digits, ".", "_" and "-"' });
/** Pure: what is wrong with a mount point as written (before {owner} is replaced), or undefined. */
export function mountPathProblem(path: string): string | undefined {
  const problem = guestPathProblem(path, { placeholders: ['{owner}'] });
  if (problem) return problem;
  const system = systemPlace(path);
  if (system) return `${path} is ${system === path ? 'the guest\'s system folder' : `inside the guest's system folder ${system}`}: mount the cluster's exports on folders of their own`;
  return undefined;
}

/** Pure: what is wrong with the private subnet, or undefined. */
export function subnetProblem(v: string): string | undefined {
  const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.0\/24$/.exec(v);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) return 'expected an IPv4 /24 written like 192.168.77.0/24 (no leading zeros)';
  // slirp's own network inside every VM: 10.0.2.0/24 (the host is 10.0.2.2).
  if (v === '10.0.2.0/24') return '10.0.2.0/24 is the user network every VM already has (the host is 10.0.2.2 there)';
  const [a, b] = [Number(m[1]), Number(m[2])];
  const private1918 = a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
  if (!private1918) return `${v} is not a private network (RFC 1918: 10.x, 172.16-31.x, 192.168.x)`;
  return undefined;
}

const guestPath = z.string().superRefine((v, ctx) => {
  const problem = mountPathProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Debian's and RedHat's system accounts (base-passwd, setup) and daemons' users: an owner by these names is not a job owner. */
const systemAccounts = new Set(['root', 'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'mail', 'news', 'uucp', 'proxy', 'www-data', 'backup',
  'list', 'irc', 'gnats', 'nobody', 'nogroup', 'adm', 'halt', 'shutdown', 'operator', 'ftp', 'sshd', 'messagebus', 'polkitd', 'tss', 'chrony', '_apt', 'statd', '_rpc', 'rpc', 'rpcuser', 'nfsnobody']);

/** Pure: what is wrong with the owner's name, or undefined. */
export function ownerNameProblem(name: string): string | undefined {
  if (systemAccounts.has(name) || name.startsWith('systemd-')) return `${name} is a system account of the guest: the job owner must be an ordinary user`;
  return undefined;
}

/** The largest VM a rehearsal starts per node: qemu would reserve it, and no build host here holds more. */
export const maxVmMemory = 256 * 1024 ** 3;

const mount = z.strictObject({
  mount: guestPath.describe('Where the export is mounted in the VM ({owner} is the job owner\'s name)'),
}).describe('An NFS export of the cluster, served by the rehearsal\'s own NFS server');

/** The job a cluster file that names none runs: the default profile's single-node sample app. */
export const defaultJobCommand = '/opt-vm/hello-mpi/bin/run.sh';

export const clusterSchema = z
  .strictObject({
    $schema: z.string().optional().describe('Editor hint; ignored'),
    name: word.describe('Name of the cluster description'),
    description: z.string().optional(),
    seed: z
      .strictObject({
        transport: z.enum(['virtio-disk', 'cdrom']).default('virtio-disk').describe('How the seed is attached: a raw virtio disk (vTorque) or a cdrom'),
        instanceId: z
          .enum(['fixed', 'fresh'])
          .default('fixed')
          .describe('fixed: no meta-data, so cloud-localds writes instance-id iid-local01 for every VM (vTorque); fresh: a new id per boot'),
        hostKeys: z
          .enum(['dpkg-reconfigure', 'ssh-keygen'])
          .default('dpkg-reconfigure')
          .describe('How runcmd makes the SSH host keys before sshd is restarted: dpkg-reconfigure openssh-server as vTorque does (ssh-keygen -A if it fails), which runs the package\'s whole postinst again (ucf, deb-systemd-helper, three daemon-reloads: 193 s of a TCG boot on a slow day, see docs/rehearse.md), or ssh-keygen -A, which makes the missing keys and nothing else'),
      })
      .prefault({})
      .describe('The NoCloud seed, made by cloud-localds as the batch system makes it'),
    vm: z
      .strictObject({
        firmware: z
          .enum(['bios', 'uefi', 'uefi-secure'])
          .default('bios')
          .describe('The node\'s VM firmware: bios (SeaBIOS, vTorque), uefi (OVMF from Debian\'s ovmf package, a fresh vars file per VM) or uefi-secure (OVMF\'s Secure Boot build with Microsoft\'s keys enrolled, Secure Boot enforced)'),
        machine: word.optional().describe('qemu machine type; default pc (the newest pc-i440fx) for bios, q35 for uefi (Secure Boot needs q35\'s SMM)'),
        cpu: word.default('Penryn').describe('CPU model of the node\'s VMs (vTorque: Penryn, no x86-64-v2)'),
        memory: z
          .string()
          .regex(sizePattern, { error: 'expected a size like 1G' })
          .refine((v) => !sizePattern.test(v) || parseSize(v) >= 256 * 1024 ** 2, { error: 'at least 256M: a Debian guest does not boot in less (a bare number is bytes)' })
          .refine((v) => !sizePattern.test(v) || parseSize(v) <= maxVmMemory, { error: 'at most 256G per VM' })
          .default('1G'),
        cpus: z.int().min(1).max(64).default(1),
      })
      .prefault({})
      .describe('The VM the batch system starts per job and node'),
    owner: z
      .strictObject({
        name: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: 'expected a Unix user name' }).superRefine((v, ctx) => {
          const problem = ownerNameProblem(v);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }).default('jobuser'),
        uid: z.int().min(1000).max(60000).default(2001),
        gid: z.int().min(1000).max(60000).default(2001),
      })
      .prefault({})
      .describe('The job owner, created at boot by bootcmd with the cluster\'s ids'),
    bootPackages: z
      .array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, { error: 'expected a package name' }))
      .default(['nfs-common', 'openmpi-bin', 'libopenmpi-dev', 'libmetis5', 'libmetis-dev', '9mount'])
      .describe('Packages the batch system installs at every boot (cloud-config packages); already installed ones cost only the apt run'),
    nfs: z
      .strictObject({
        home: mount.prefault({ mount: '/home/{owner}' }),
        workspace: mount.prefault({ mount: '/workspace' }),
        software: mount.prefault({ mount: '/opt' }),
      })
      .prefault({})
      .superRefine((nfs, ctx) => {
        const points = Object.entries(nfs).map(([name, m]) => [name, m.mount] as const);
        for (const [i, [name, point]] of points.entries()) {
          for (const [other, otherPoint] of points.slice(0, i)) {
            if (point === otherPoint || point.startsWith(`${otherPoint}/`) || otherPoint.startsWith(`${point}/`)) {
              ctx.addIssue({ code: 'custom', path: [name, 'mount'], message: `${point} ${point === otherPoint ? 'is also' : 'nests with'} the mount point of ${other} (${otherPoint}): each export needs its own folder` });
            }
          }
        }
      })
      .describe('NFS exports and where they mount: the owner\'s home, the job workspace, the cluster\'s software share'),
    job: z
      .strictObject({
        name: z
          .string()
          .regex(/^[A-Za-z][A-Za-z0-9_.-]{0,14}$/, { error: 'expected a Torque job name: a letter, then up to 14 letters, digits, _ . -' })
          .default('STDIN')
          .describe('The job\'s name: its streams land in the home folder as NAME.o<number> and NAME.e<number> (Torque calls a job read from standard input STDIN)'),
        command: z
          .string()
          .min(1)
          .default(defaultJobCommand)
          .describe('The job: run over SSH as the owner on the first VM, in a login shell in the home folder, with Torque\'s environment (PBS_JOBID, PBS_NODEFILE, PBS_O_WORKDIR, PBS_NP, …) and WORKSPACE; `rehearse --job` overrides it. It passes when it exits 0 (and its stdout matches `expect`)'),
        expect: z
          .string()
          .refine((v) => regexProblem(v) === undefined, { error: 'not a valid JavaScript regular expression' })
          .optional()
          .describe('A regular expression the job\'s stdout must match, run with a 1 s bound (`rehearse --expect` overrides it)'),
      })
      .prefault({})
      .describe('The job script the batch system runs'),
    nodes: z
      .strictObject({
        count: z.int().min(1).max(8).default(1).describe('VMs per rehearsal (`rehearse --nodes N` overrides); from 2 on they share a private segment, the job gets every VM in PBS_NODEFILE, and `mpiCommand` (if named) runs across them'),
        subnet: z
          .string()
          .superRefine((v, ctx) => {
            const problem = subnetProblem(v);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          })
          .default('192.168.77.0/24')
          .describe('The private segment between the VMs (a /24; vnode01 gets .11, vnode02 .12, …); qemu joins it over 127.0.0.1, no host bridge'),
        mpiCommand: z
          .string()
          .min(1)
          .optional()
          .describe('A check of the shipped MPI example across the VMs (check mpi.ranks), besides the job: run on vnode01 as the owner with Torque\'s environment; it must print "rank R of N on HOST" once per rank. Left out, only the job runs across the nodes; `rehearse --job` leaves it out'),
      })
      .prefault({})
      .describe('A job across several VMs, as vTorque runs one per node: hostnames vnode01…, a node file, the owner\'s SSH key in the NFS home'),
    timeouts: z
      .strictObject({
        jobReady: z.string().regex(durationPattern, { error: 'expected a duration like 10m' }).default('10m').describe('Give up when SSH as the owner does not work after this long'),
        job: z.string().regex(durationPattern, { error: 'expected a duration like 5m' }).default('5m'),
      })
      .prefault({}),
  })
  .superRefine((cluster, ctx) => {
    // {owner} is checked as written by the field, and here as it will be: owner etc and /{owner} would mount over /etc.
    const points = Object.entries(cluster.nfs).map(([name, m]) => [name, m.mount, m.mount.replaceAll('{owner}', cluster.owner.name)] as const);
    for (const [i, [name, written, point]] of points.entries()) {
      if (written === point || mountPathProblem(written)) continue;
      const problem = mountPathProblem(point)
        ?? points.filter((_, j) => j !== i).map(([other, , p]) => (point === p || point.startsWith(`${p}/`) || p.startsWith(`${point}/`) ? `${point} meets the mount point of ${other} (${p})` : undefined)).find(Boolean);
      if (problem) ctx.addIssue({ code: 'custom', path: ['nfs', name, 'mount'], message: `with owner ${cluster.owner.name}: ${problem}` });
    }
    // OVMF's Secure Boot build runs only with SMM, which i440fx lacks; SeaBIOS on q35 is fine, OVMF on i440fx without SMM too.
    const machine = clusterMachine(cluster);
    if (cluster.vm.firmware === 'uefi-secure' && !/^(pc-)?q35/.test(machine)) ctx.addIssue({ code: 'custom', path: ['vm', 'machine'], message: `${machine} has no SMM, which OVMF's Secure Boot build needs: use q35 (or leave vm.machine out)` });
  })
  .describe('A cluster guestforge rehearse boots images like');

export type Cluster = z.output<typeof clusterSchema>;

/** The node VMs' machine: the cluster's, or the firmware's default (pc for SeaBIOS, q35 for OVMF). */
export function clusterMachine(cluster: { vm: { firmware: 'bios' | 'uefi' | 'uefi-secure'; machine?: string | undefined } }): string {
  return cluster.vm.machine ?? (cluster.vm.firmware === 'bios' ? 'pc' : 'q35');
}
export type NfsExportName = keyof Cluster['nfs'];
