/**
 * The cluster description `guestforge rehearse` boots an image by: how the
 * batch system makes the seed, the VM it starts, the job owner, what it
 * installs at boot, where NFS exports mount, and the job. One source of
 * truth for types, defaults, docs and schema/cluster.schema.json.
 */
import { z } from 'zod';
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

const guestPath = z.string().superRefine((v, ctx) => {
  const problem = mountPathProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const mount = z.strictObject({
  mount: guestPath.describe('Where the export is mounted in the VM ({owner} is the job owner\'s name)'),
}).describe('An NFS export of the cluster, served by the rehearsal\'s own NFS server');

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
      })
      .prefault({})
      .describe('The NoCloud seed, made by cloud-localds as the batch system makes it'),
    vm: z
      .strictObject({
        machine: word.default('pc').describe('qemu machine type; pc is the newest pc-i440fx'),
        cpu: word.default('Penryn').describe('CPU model of the node\'s VMs (vTorque: Penryn, no x86-64-v2)'),
        memory: z
          .string()
          .regex(sizePattern, { error: 'expected a size like 1G' })
          .refine((v) => !sizePattern.test(v) || parseSize(v) >= 256 * 1024 ** 2, { error: 'at least 256M: a Debian guest does not boot in less (a bare number is bytes)' })
          .default('1G'),
        cpus: z.int().min(1).max(64).default(1),
      })
      .prefault({})
      .describe('The VM the batch system starts per job and node'),
    owner: z
      .strictObject({
        name: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: 'expected a Unix user name' }).default('jobuser'),
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
        command: z.string().min(1).default('/opt-vm/hello-mpi/bin/run.sh').describe('Run over SSH as the owner, in the home folder, with WORKSPACE set'),
        expect: z
          .string()
          .refine((v) => {
            try {
              new RegExp(v);
              return true;
            } catch {
              return false;
            }
          }, { error: 'not a valid JavaScript regular expression' })
          .optional()
          .describe('A regular expression the job\'s output must match'),
      })
      .prefault({})
      .describe('The job script the batch system runs'),
    timeouts: z
      .strictObject({
        jobReady: z.string().regex(durationPattern, { error: 'expected a duration like 10m' }).default('10m').describe('Give up when SSH as the owner does not work after this long'),
        job: z.string().regex(durationPattern, { error: 'expected a duration like 5m' }).default('5m'),
      })
      .prefault({}),
  })
  .describe('A cluster guestforge rehearse boots images like');

export type Cluster = z.output<typeof clusterSchema>;
export type NfsExportName = keyof Cluster['nfs'];
