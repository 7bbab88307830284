/**
 * What Debian brings to the file format: its `os` section of the profile and its boot
 * trims, in the order they are applied (the Linux ones among them). Data only: imports
 * nothing but zod and src/model/ (see os/linux-format.ts).
 */
import { z } from 'zod';
import type { BootTrim } from '../../model/trim.ts';
import { cloudInitKeysToConsole, e2scrubReap } from '../linux-format.ts';

export const os = z.strictObject({
  family: z.literal('debian'),
  release: z.string().min(1).describe('Debian release, e.g. "12"'),
  kernel: z
    .enum(['generic', 'cloud'])
    .default('generic')
    .describe('linux-image-amd64 (generic, has rdma_rxe) or linux-image-cloud-amd64 (smaller, no rdma_rxe)'),
});

/**
 * Kernel modules a batch VM's initramfs needs: its root disk on virtio (blk, scsi), IDE (i440fx),
 * AHCI (q35) or NVMe, ext4, and the CD driver, because cloud-init looks for a NoCloud seed
 * on a CD before udev has loaded the drivers of the root filesystem (without sr_mod it finds
 * none and does not run at all).
 */
export const initramfsModules = ['virtio_pci', 'virtio_blk', 'virtio_scsi', 'sd_mod', 'sr_mod', 'ata_piix', 'ahci', 'nvme', 'ext4'];

/**
 * Module folders of the kernel for hardware a batch VM on qemu never has: graphics (qemu's VGA
 * works without a DRM driver; the consoles are serial), sound, cameras and TV, wireless and
 * Bluetooth, and the staging tree. Paths as the kernel package lists them (bookworm ships
 * /lib/modules; later releases /usr/lib/modules: both are excluded).
 */
export const noDesktopDrivers = ['drivers/gpu', 'sound', 'drivers/media', 'drivers/net/wireless', 'net/wireless', 'net/mac80211', 'drivers/bluetooth', 'net/bluetooth', 'drivers/staging'];

const cloudInitGrubDpkg: BootTrim = {
  id: 'cloud-init-grub-dpkg',
  what: 'cloud-init module grub_dpkg off (`grub_dpkg: {enabled: false}`)',
  why: 'it probes the boot disk to record GRUB\'s install device in debconf; the build VM has recorded it, and the disk the cluster boots is the same (~3 s per boot)',
  files: [{ path: '/etc/cloud/cloud.cfg.d/92_guestforge_grub_dpkg.cfg', content: '# guestforge boot trim cloud-init-grub-dpkg (boot.keep to undo)\ngrub_dpkg:\n  enabled: false\n' }],
};

const aptNoTranslations: BootTrim = {
  id: 'apt-no-translations',
  what: 'apt fetches no translated package descriptions (`Acquire::Languages "none"`)',
  why: 'the cluster\'s boot-time `packages` run does an apt update at every job start; the Translation index is a third of what it downloads and parses',
  files: [{ path: '/etc/apt/apt.conf.d/90guestforge-no-translations', content: '// guestforge boot trim apt-no-translations (boot.keep to undo)\nAcquire::Languages "none";\n' }],
  early: true,
};

const networkdWaitOnlineAny: BootTrim = {
  id: 'networkd-wait-online-any',
  what: 'systemd-networkd-wait-online waits for one link to be online, not all (`--any`)',
  why: 'a node with a second NIC on the cluster\'s private network waits for it too; until cloud-init has written its static address, the image\'s DHCP default keeps it configuring, and cloud-init\'s network stage waited ~25-55 s per two-NIC boot here',
  files: [{
    path: '/etc/systemd/system/systemd-networkd-wait-online.service.d/90-guestforge-any.conf',
    content: '# guestforge boot trim networkd-wait-online-any (boot.keep to undo)\n[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any\n',
  }],
};

const initramfsDiskModules: BootTrim = {
  id: 'initramfs-disk-modules',
  what: `an initramfs with only the modules that find the root disk and a seed CD (\`MODULES=list\`: ${initramfsModules.join(', ')}) instead of \`MODULES=most\``,
  why: 'a fifth of the size (7.6 MB, was 37 MB) for the kernel to unpack at every boot, and 8 s instead of 70 s each time it is made (twice per bootstrap, again at every kernel update); a disk on another controller needs `boot.keep`',
  bootstrap: { hookArg: `initramfs-modules=${initramfsModules.join(',')}` },
};

const grubNoWait: BootTrim = {
  id: 'grub-no-wait',
  what: 'GRUB boots its first entry at once (`GRUB_TIMEOUT=0`, was 1 s); the menu is still drawn on the serial console',
  why: 'nobody picks a boot entry on a batch VM; measured from qemu\'s start, GRUB began loading the kernel 2.3 s in, 1.5 s of it the menu\'s wait',
  bootstrap: { hookArg: 'grub-timeout=0' },
};

const kernelQuiet: BootTrim = {
  id: 'kernel-quiet',
  what: 'kernel command line `quiet`: the kernel and systemd print only warnings and errors on the console (cloud-init\'s output, the login prompt and any panic still reach it)',
  why: 'every console line goes out byte by byte through an emulated serial port; a batch VM\'s console is read only when something fails, and then the warnings are there',
  bootstrap: { hookArg: 'kernel-arg=quiet' },
};

const bootNoFsck: BootTrim = {
  id: 'boot-no-fsck',
  what: 'kernel command line `fsck.mode=skip`, and fsck pass 0 in fstab for the root and the apps volume: no file system check at boot, no systemd-fsck unit started to skip one; the journal is still replayed when a file system is mounted',
  why: 'each job boots a fresh copy of an image the build checked and closed cleanly, so the check finds nothing; told to skip, systemd-fsck still cost 1-3 s of the smoke boot for each file system (the root\'s on the critical chain before cloud-init-local). A cluster that keeps a VM\'s disk from job to job should keep the check (`boot.keep`)',
  bootstrap: { hookArg: 'kernel-arg=fsck.mode=skip root-fsck-pass=0' },
};

const dpkgNoDocs: BootTrim = {
  id: 'dpkg-no-docs',
  what: 'dpkg leaves out documentation, man and info pages and translations (`path-exclude`; copyright files stay), in the image and in every later install',
  why: 'nobody reads them in a batch VM; fewer files to unpack at bootstrap, to copy to every node and to install at job start',
  bootstrap: {
    dpkgopt: [
      'path-exclude=/usr/share/doc/*', 'path-include=/usr/share/doc/*/copyright',
      'path-exclude=/usr/share/man/*', 'path-exclude=/usr/share/info/*', 'path-exclude=/usr/share/locale/*', 'path-include=/usr/share/locale/locale.alias',
    ],
  },
};

const kernelNoDesktopDrivers: BootTrim = {
  id: 'kernel-no-desktop-drivers',
  what: `dpkg leaves out the kernel modules of hardware a qemu guest never has: ${noDesktopDrivers.join(', ')} (\`path-exclude\` under /lib/modules, in this kernel and every later one); virtio, disk controllers, network cards (SR-IOV functions too), NFS, 9p and RDMA stay`,
  why: '145 MiB of the 389 MiB of modules in bookworm\'s kernel package (its graphics drivers 39, sound 28, media 33, wireless 36), in every image copied to every node; nothing in a batch VM loads them (the display drivers of qemu\'s own VGA and virtio-gpu go too: the console is serial, and the VGA text console needs no module)',
  bootstrap: { dpkgopt: noDesktopDrivers.flatMap((d) => [`path-exclude=/lib/modules/*/kernel/${d}/*`, `path-exclude=/usr/lib/modules/*/kernel/${d}/*`]) },
};

const noSshVsock: BootTrim = {
  id: 'no-ssh-vsock',
  what: 'kernel command line `systemd.ssh_auto=no`: systemd-ssh-generator does not bind sshd to AF_VSOCK (or a local AF_UNIX socket)',
  why: 'the batch system reaches a job VM over its network; an sshd on vsock would be a second way in, from the host, around the cluster\'s network fencing. On qemu without a vsock device the generator also failed at every boot (`Failed to query local AF_VSOCK CID`)',
  releases: { only: ['13'], because: 'Debian 12\'s systemd 252 has no ssh generator' },
  bootstrap: { hookArg: 'kernel-arg=systemd.ssh_auto=no' },
};

const tmpOnDisk: BootTrim = {
  id: 'tmp-on-disk',
  what: '`tmp.mount` masked: /tmp is a folder on the root disk (as in Debian 12), not a tmpfs of up to half the RAM',
  why: 'a job VM\'s memory is the job\'s: files in a tmpfs /tmp take it and, with no swap in a batch VM, are never paged out, so a job that writes temp files is killed for memory instead of finding a full disk; each node\'s root disk is its own copy of the image and is thrown away with the VM. A job that wants RAM-backed temp files can mount one itself; bulk data belongs in /workspace',
  releases: { only: ['13'], because: 'Debian 12 keeps /tmp on the root disk already' },
  mask: ['tmp.mount'],
};

const ucxNoRocm: BootTrim = {
  id: 'ucx-no-rocm',
  what: 'UCX without the AMD ROCm runtime: a stub package (`guestforge-no-rocm`) provides `libamdhip64-5` and `libhsa-runtime64-1`, and dpkg leaves out UCX\'s three ROCm plugins (`/usr/lib/*/ucx/*rocm*`); UCX\'s core and its verbs, TCP and shared-memory transports stay',
  why: 'trixie\'s libucx0, which Open MPI 5 depends on, hard-depends on the ROCm runtime for its ROCm plugins only: with them come LLVM 17, libamd-comgr and libdrm-amdgpu, about 230 MiB in every image copied to every node, for an AMD GPU a batch VM does not have. Installing the real packages later replaces the stub (it conflicts with them). A profile for AMD GPU passthrough keeps ROCm with `boot.keep: [ucx-no-rocm]`',
  releases: { only: ['13'], because: 'bookworm\'s UCX 1.13 has no ROCm dependency' },
  bootstrap: {
    dpkgopt: ['path-exclude=/usr/lib/*/ucx/*rocm*'],
    stub: {
      name: 'guestforge-no-rocm',
      version: '1',
      provides: [{ name: 'libamdhip64-5', version: '5.7.1-99' }, { name: 'libhsa-runtime64-1', version: '6.1.2-99' }],
      description: 'stands in for the AMD ROCm runtime in a guest without an AMD GPU (guestforge trim ucx-no-rocm)',
    },
  },
};

/** What a batch VM's boot does not need, one record per cut, each with its reason (README: docs/boot.md). */
export const trims: readonly BootTrim[] = [
  cloudInitGrubDpkg,
  cloudInitKeysToConsole,
  aptNoTranslations,
  networkdWaitOnlineAny,
  e2scrubReap,
  initramfsDiskModules,
  grubNoWait,
  kernelQuiet,
  bootNoFsck,
  dpkgNoDocs,
  kernelNoDesktopDrivers,
  noSshVsock,
  tmpOnDisk,
  ucxNoRocm,
];
