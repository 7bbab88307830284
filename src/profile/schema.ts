/**
 * The profile schema: the one source of truth for the profile's types,
 * defaults and documentation. schema/profile.schema.json and the README's
 * profile reference are generated from it.
 */
import { z } from 'zod';
import { osSections } from '../os/format.ts';
import { bootTrimIds } from '../policy/boot.ts';
import { guestPathProblem, systemPlace } from '../policy/paths.ts';
import { libvirtUriProblem } from '../vm/uri.ts';
import { durationPattern, sizePattern } from './units.ts';

const size = (example: string) =>
  z.string().regex(sizePattern, { error: `expected a size like ${example}` });
const duration = (example: string) =>
  z.string().regex(durationPattern, { error: `expected a duration like ${example}` });

/** How every field naming a host file is described: profile/host-paths.ts confines it, and a test finds them by this. */
const hostFile = (what: string) => `${what}, relative to the profile file that names it; it must be inside that file's folder by real path (--allow-host-path DIR allows more)`;

const sha256 = z
  .string()
  .regex(/^[0-9a-f]{64}$/i, { error: 'expected a sha256: 64 hex digits (sha256sum FILE)' })
  .describe('SHA-256 of the file, checked before use');

const unixName = z
  .string()
  .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: 'expected a Unix user name (lower case, digits, _ and -)' });

const mode = z
  .string()
  .regex(/^0?[0-7]{3,4}$/, { error: 'expected an octal mode as a string, like "0755"' });

const imageBase = z
  .strictObject({
    path: z.string().optional().describe(hostFile('Local image file')),
    url: z.url({ protocol: /^https?$/ }).optional().describe('http(s) URL; downloaded to the cache and checked'),
    sha256,
    format: z.enum(['qcow2', 'raw']).default('qcow2').describe('Format of the image file'),
  })
  .refine((v) => (v.path === undefined) !== (v.url === undefined), {
    error: 'give exactly one of path or url',
  })
  .describe('Start from an existing disk image (a vendor cloud image, or one of ours)');

const bootstrapBase = z
  .strictObject({
    suite: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,31}$/, { error: 'expected a suite name like bookworm (it becomes an mmdebstrap argument)' })
      .describe('Debian suite to bootstrap, e.g. bookworm'),
    mirror: z
      .union([z.literal('auto'), z.url({ protocol: /^https?$/ })])
      .default('auto')
      .describe("Package mirror; 'auto' reads the host's apt sources (a Debian release the host does not name, such as trixie on a bookworm host, comes from the host's Debian archive). A user:password@ in the URL reaches apt through an owner-only auth file, never a command line or the image"),
    variant: z
      .enum(['important', 'standard', 'required', 'minbase'])
      .default('important')
      .describe('mmdebstrap variant'),
    packages: z
      .array(z.string())
      .default([])
      .describe('Extra packages installed at bootstrap time (faster than in the build VM)'),
  })
  .describe('Make the base from scratch with mmdebstrap (Debian only)');

const builderKernel = z
  .strictObject({
    path: z.string().optional().describe(hostFile('Local file')),
    url: z.url({ protocol: /^https?$/ }).optional().describe('http(s) URL; downloaded to the cache and checked'),
    sha256,
  })
  .refine((v) => (v.path === undefined) !== (v.url === undefined), {
    error: 'give exactly one of path or url',
  })
  .describe('OSv only: the ZFS builder kernel (osv-zfs-builder.elf) a native compose boots; default: osv-zfs-builder.elf beside base.image.path, checked against the SHA256SUMS there');

const base = z
  .strictObject({ image: imageBase.optional(), bootstrap: bootstrapBase.optional(), builder: builderKernel.optional() })
  .refine((v) => (v.image === undefined) !== (v.bootstrap === undefined), {
    error: 'give exactly one of base.image or base.bootstrap',
  })
  .describe('Where the guest starts from');

export const osSchema = z
  .discriminatedUnion('family', osSections)
  .describe('Guest OS; fields after family depend on it');

const user = z.strictObject({
  name: unixName.describe('Login name'),
  uid: z.int().min(1000).max(60000).optional().describe('Fixed uid (matches the cluster NFS homes)'),
  groups: z.array(z.string()).default([]).describe('Supplementary groups'),
  sudo: z.boolean().default(false).describe('Passwordless sudo'),
  shell: z.string().default('/bin/bash'),
  sshKeys: z.array(z.string().regex(/^(ssh-|ecdsa-|sk-)/, { error: 'expected an SSH public key line' })).default([]),
  passwordHash: z
    .string()
    .regex(/^\$(1|5|6|y|2[aby])\$/, { error: 'expected a crypt(3) hash (mkpasswd -m sha-512); plaintext passwords are refused' })
    .optional()
    .describe('Hashed password; plaintext passwords are not accepted'),
});

/** A guest path that reaches shell lines and guestfish: plain characters, no "..". */
const guestPath = z.string().superRefine((v, ctx) => {
  const problem = guestPathProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** A layout folder: a guest path that is not a system or shared folder (its mode and owner get set). */
function layoutDir(options: { shared: boolean }) {
  return z.string().superRefine((v, ctx) => {
    const problem = guestPathProblem(v);
    const system = problem ? undefined : systemPlace(v, { shared: options.shared });
    if (problem || system) ctx.addIssue({ code: 'custom', message: problem ?? `${v} is ${system === v ? 'a system or shared folder' : `inside the system folder ${system}`}: use a folder of its own` });
  });
}

const app = z.strictObject({
  src: z.string().min(1).describe(hostFile('File or folder on the host (links inside a folder are copied as links)')),
  dest: guestPath.describe('Absolute path in the guest, inside layout.optVm (or a layout.appRoots folder)'),
  mode: mode.optional().describe('Octal mode for files (directories keep theirs)'),
  owner: z
    .string()
    .regex(/^\d+:\d+$/, { error: 'expected uid:gid, like "0:0"' })
    .default('0:0')
    .describe('Numeric uid:gid (names are not resolvable offline)'),
});

const layout = z
  .strictObject({
    workspace: layoutDir({ shared: true }).default('/workspace').describe('Folder for jobs\' intermediate data'),
    workspaceMode: mode.default('1777').describe('Mode of the workspace folder'),
    optVm: layoutDir({ shared: true }).default('/opt-vm').describe('Where apps go; /opt is mounted by the cluster'),
    home: layoutDir({ shared: false }).default('/home').describe('Parent of users\' homes'),
    appRoots: z
      .array(layoutDir({ shared: true }))
      .default([])
      .describe('More folders apps may go into besides optVm (each app still gets a path of its own inside one); say so here, or apps outside optVm are refused'),
  })
  .describe('Guest layout the cluster expects');

const vrdma = z
  .strictObject({
    enabled: z.boolean().default(false),
    netdev: z.string().optional().describe('NIC for the soft-RoCE link; default: the NIC of the default route'),
    installKernel: z
      .boolean()
      .default(true)
      .describe('Allow installing a kernel with rdma_rxe when the base has none'),
  })
  .describe('Soft-RoCE (rdma_rxe) support');

const boot = z
  .strictObject({
    keep: z
      .array(z.enum(bootTrimIds))
      .default([])
      .describe('Boot trims to leave out (each is listed with its reason in the README, "Boot time")'),
  })
  .describe('What the image\'s boot skips: every job pays the boot');

const cloudInit = z
  .strictObject({
    userData: z
      .union([z.string(), z.record(z.string(), z.unknown())])
      .optional()
      .describe(hostFile('Extra cloud-config merged into the generated one: inline keys, or a file path')),
  })
  .describe('Extra cloud-init configuration for the build VM');

const build = z
  .strictObject({
    memory: size('2G').default('2G').describe('Memory of the build VM'),
    cpus: z.int().min(1).max(64).default(2),
    timeout: duration('30m').default('30m').describe('Give up on the build VM after this long'),
    stallTimeout: duration('10m').default('10m').describe('Give up when the console is silent this long'),
    smokeTimeout: duration('10m').default('10m').describe('Give up on the smoke VM after this long'),
    backend: z.enum(['qemu', 'libvirt']).default('qemu').describe('What runs the build and smoke VMs: qemu directly, or libvirt domains'),
    connect: z
      .string()
      .superRefine((v, ctx) => {
        const problem = libvirtUriProblem(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional()
      .describe('libvirt: the connection URI (default qemu:///system); a remote one moves disks through a storage pool'),
    pool: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('guestforge').describe('libvirt, remote URIs: the storage pool disks travel through (a dir pool is created if missing)'),
    accel: z.enum(['auto', 'kvm', 'tcg']).default('auto').describe('auto: KVM if a probe proves it works'),
  })
  .describe('Build VM settings');

/**
 * Why a smoke.expect pattern is refused, if it is: it must compile, and it runs against console
 * lines a hostile app controls, so nothing that can backtrack exponentially (a quantified group
 * that holds a quantifier, back-references).
 */
export function expectProblem(pattern: string): string | undefined {
  try {
    new RegExp(pattern);
  } catch (error) {
    return `not a regular expression: ${(error as Error).message}`;
  }
  if (/\\[1-9]|\\k</.test(pattern)) return 'back-references are not allowed (they can take exponential time on a hostile console)';
  if (/\([^()]*[*+}][^()]*\)\s*[*+{?]/.test(pattern)) return 'a quantified group holding a quantifier (like (a+)+) is not allowed: it can take exponential time on a hostile console';
  return undefined;
}

const smoke = z
  .strictObject({
    expect: z
      .string()
      .min(1)
      .max(200)
      .superRefine((v, ctx) => {
        const problem = expectProblem(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional()
      .describe('OSv: a regular expression the app\'s console output must match (at most 200 characters; no back-references or nested quantifiers)'),
    powerOff: z.boolean().default(true).describe('OSv: the app ends and the VM powers off by itself (false: it keeps running, like a server)'),
  })
  .describe('What the smoke boot expects (OSv apps; Linux images are checked from inside)');

const disk = z
  .strictObject({
    size: size('8G').default('8G').describe('Virtual size of the guest disk'),
    format: z.enum(['qcow2', 'raw']).default('qcow2').describe('Format of the output image'),
    compress: z.enum(['zstd', 'zlib', 'none']).default('zstd').describe('qcow2 compression (zstd needs qemu >= 5.1 to read)'),
    appsVolume: z
      .union([size('512M'), z.literal('none')], { error: 'expected a size like 512M, or "none"' })
      .default('512M')
      .describe('Bootstrapped bases: the apps folder (layout.optVm) is an ext4 volume of its own, this big, carved from disk.size, so a build where only apps changed writes it from the host with no appliance launch; "none": apps go into the root filesystem (always so for base.image)'),
    firmware: z
      .enum(['bios', 'uefi', 'hybrid'])
      .optional()
      .describe('The firmware the image boots under: bios (SeaBIOS, GRUB in the MBR), uefi (OVMF: GPT, an EFI system partition with Debian\'s signed shim and GRUB) or hybrid (one GPT disk for both, as Debian\'s cloud images). Bootstrapped bases are made so (default hybrid); for base.image it is what the image claims, and verify checks it (default: no claim, verify states what it finds); OSv boots through its own BIOS loader only. Smoke boots the image under each firmware it claims'),
    secureBoot: z
      .boolean()
      .default(false)
      .describe('uefi and hybrid: prove the image boots under Secure Boot with Debian\'s signed chain (shim signed by Microsoft, signed GRUB and kernel; no key of yours): the UEFI smoke boot runs OVMF\'s Secure Boot build with Microsoft\'s keys enrolled and checks from inside that Secure Boot is on, and verify checks that every link of the chain is signed'),
  })
  .describe('Output disk');

export const profileSchema = z
  .strictObject({
    $schema: z.string().optional().describe('Editor hint; ignored'),
    extends: z.string().optional().describe(hostFile('Profile this one builds on (maps deep-merge, lists append, scalars override)')),
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, { error: 'expected a name of lower-case letters, digits, ".", "_" and "-", at most 64 characters' })
      .refine((v) => v !== 'logs' && !/\.(qcow2|raw|img|vmdk|tar|squashfs|json|sha256)$/.test(v), { error: 'this name would clash with the output folder\'s own files (logs/, <name>.qcow2 …)' })
      .describe('Image name; output is <name>.qcow2'),
    description: z.string().optional(),
    version: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/, { error: 'expected letters, digits, ".", "_", "+" and "-", starting with a letter or digit, at most 64 characters' })
      .refine((v) => v !== 'current', { error: '"current" names the published folder\'s link to the newest version' })
      .optional()
      .describe('The image\'s version, in the manifest, SBOM, provenance and the published folder; default: the build\'s UTC date and the resolved profile\'s short hash (20261129-3f2a9c1d)'),
    os: osSchema,
    base,
    disk: disk.prefault({}),
    packages: z.array(z.string().min(1)).default([]).describe('Packages installed in the build VM'),
    users: z.array(user).default([]).describe('Users created in the image'),
    layout: layout.prefault({}),
    vrdma: vrdma.prefault({}),
    boot: boot.prefault({}),
    apps: z.array(app).default([]).describe('Files copied in offline'),
    cloudInit: cloudInit.prefault({}),
    commands: z.array(z.string().min(1)).default([]).describe('Shell commands run as root in the build VM, in order'),
    build: build.prefault({}),
    smoke: smoke.prefault({}),
    outputs: z
      .array(z.enum(['qcow2', 'raw', 'vmdk', 'tar', 'squashfs']))
      .default([])
      .describe('Extra outputs besides disk.format: disk images (qcow2, raw, vmdk streamOptimized) or the root filesystem (tar, squashfs)'),
  })
  .describe('A guestforge profile');

/** The layout a profile gets when it says nothing: for images checked without a profile. */
export const defaultLayout = layout.parse({});

export type Profile = z.output<typeof profileSchema>;
export type OsFamily = Profile['os']['family'];
export type OsOf<F extends OsFamily> = Extract<Profile['os'], { family: F }>;
export type App = Profile['apps'][number];
export type User = Profile['users'][number];
