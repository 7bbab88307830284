/**
 * verify. Rule logic is proven over GuestFacts literals (no appliance): a
 * good guest, then one variant per rule with exactly that thing broken. The
 * reading is proven with real read-only guestfish launches through the CLI
 * on small hand-made disks (mke2fs -d, no appliance to make them): the good
 * disk's facts must equal the literal, and a disk with every rule broken
 * must fail every rule.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { datasourceVerdict, rules, sshdSetting } from '../src/verify/rules.ts';
import { evaluate, defaultVerifyOptions as noFamilies } from '../src/verify/run.ts';
import { guestFamilies } from '../src/os/index.ts';
import { verifyOptionsOf } from '../src/stages/verify.ts';
import { loadProfileOrThrow } from '../src/loader/index.ts';
import { accountPasswords, kernelCmdlinesOf, parsePasswd } from '../src/verify/parse.ts';
import { parseFstab } from '../src/verify/mount.ts';
import type { GuestFacts } from '../src/model/facts.ts';
import type { VerifyOptions } from '../src/model/verify.ts';
import { unreadableWhy } from '../src/verify/read.ts';
import { fakePe, makeBootDisk, makeImage as makeTreeImage, type Tree } from './helpers/tree-image.ts';

/** The options without a profile, as `guestforge verify` makes them: every Linux driver's family. */
const defaultVerifyOptions = { ...noFamilies, families: guestFamilies };

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const env = { XDG_CACHE_HOME: process.env.GUESTFORGE_TEST_CACHE ?? join(root, '.test-cache'), CI: '1' };
const tmp = await mkdtemp(join(tmpdir(), 'gf-verify-'));

const kernel = '6.1.0-99-amd64';
function dpkgEntry(name: string, version: string): string {
  return `Package: ${name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${version}\n`;
}
const packages = ['base-files 12.4', 'cloud-init 22.4.2-1', 'rdma-core 44.0-2', 'ibverbs-providers 44.0-2'];

/** A guest that passes every rule, vRDMA included. */
function goodTree(): Tree {
  return {
    '/etc/os-release': 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
    '/etc/debian_version': '12.8\n',
    '/etc/fstab': 'LABEL=rootfs / ext4 defaults 0 1\n',
    '/etc/hostname': 'test\n',
    '/etc/passwd': 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nhpc:x:1000:1000::/home/hpc:/bin/bash\n',
    '/etc/shadow': 'root:*:19000:0:99999:7:::\nhpc:!:19000:0:99999:7:::\n',
    '/etc/machine-id': '',
    '/etc/cloud/cloud.cfg': 'users: [default]\ncloud_init_modules: [write_files]\n',
    '/etc/cloud/cloud.cfg.d/90_guestforge_datasource.cfg': 'datasource_list: [ NoCloud, None ]\n',
    '/etc/modules-load.d/guestforge-vrdma.conf': 'rdma_rxe\n',
    '/etc/systemd/system/guestforge-vrdma.service': '[Unit]\nDescription=soft-RoCE link\n',
    '/var/lib/dpkg/status': packages.map((p) => dpkgEntry(p.split(' ')[0]!, p.split(' ')[1]!)).join('\n'),
    // Not really a kernel: a signed PE header, which is all verify reads of one.
    [`/boot/vmlinuz-${kernel}`]: fakePe(true),
    [`/lib/modules/${kernel}/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko`]: 'not really a module\n',
    '/usr/bin/true': '',
    '/bin': { link: 'usr/bin' },
    '/workspace': { dir: true, mode: 0o1777 },
    '/home/hpc': { dir: true, mode: 0o755 },
    '/opt': { dir: true },
    '/opt-vm/app': { dir: true },
    '/var/lib/cloud': { dir: true },
    '/etc/ssh/sshd_config': 'Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n',
    '/etc/ssh/sshd_config.d/50-cloud-init.conf': 'PasswordAuthentication no\n',
  };
}

/**
 * The good disk is hybrid, as guestforge's default: GRUB's boot code and a BIOS boot partition,
 * and an ESP whose removable loader is a signed shim with a signed grubx64.efi beside it. A tree
 * holding `noBiosCode` gets no boot code (boot.firmware's breaker: the disk cannot do what it claims).
 */
const noBiosCode = '/.test-no-bios-code';
const signedEsp = { 'EFI/BOOT/BOOTX64.EFI': fakePe(true), 'EFI/BOOT/grubx64.efi': fakePe(true), 'EFI/debian/grub.cfg': Buffer.from('configfile $prefix/grub.cfg\n') };
const makeImage = (name: string, tree: Tree) => makeBootDisk(tmp, name, tree, { table: 'gpt', bios: !(noBiosCode in tree), esp: signedEsp });

interface Report {
  ok: boolean;
  results: { id: string; verdict: string; evidence: string }[];
  packages: { name: string; version: string }[];
}

async function verify(image: string, ...args: string[]) {
  const r = await execa('node', [cli, 'verify', image, '--json', ...args], { env, reject: false, timeout: 5 * 60_000 });
  return { exitCode: r.exitCode, stderr: r.stderr, report: r.stdout ? (JSON.parse(r.stdout) as Report) : undefined };
}

/** Remove one package's paragraph from the tree's dpkg status (breakers compose). */
function dropPackage(t: Tree, name: string): void {
  const status = t['/var/lib/dpkg/status'] as string;
  t['/var/lib/dpkg/status'] = status.split('\n\n').filter((para) => !para.startsWith(`Package: ${name}\n`)).join('\n\n');
}

/** What each rule breaks in the good tree (the disk). */
const breakers: Record<string, (t: Tree) => void> = {
  'os.family': (t) => {
    t['/etc/os-release'] = 'NAME="Plan 9"\nID=plan9\nVERSION_ID="4"\n';
    delete t['/etc/debian_version'];
  },
  'cloud-init.installed': (t) => {
    dropPackage(t, 'cloud-init');
  },
  'cloud-init.nocloud': (t) => {
    t['/etc/cloud/cloud.cfg.d/95_ec2.cfg'] = 'datasource_list: [ Ec2, None ]\n';
  },
  'layout.workspace': (t) => {
    t['/workspace'] = { dir: true, mode: 0o755 };
  },
  'layout.home': (t) => {
    t['/etc/passwd'] = (t['/etc/passwd'] as string).replace('/home/hpc', '/srv/hpc');
  },
  'layout.opt-empty': (t) => {
    t['/opt/intel/setvars.sh'] = '# installed to the wrong place\n';
  },
  'layout.opt-vm': (t) => {
    delete t['/opt-vm/app'];
  },
  'vrdma.packages': (t) => {
    dropPackage(t, 'ibverbs-providers');
  },
  'vrdma.kernel': (t) => {
    delete t[`/lib/modules/${kernel}/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko`];
    t[`/lib/modules/${kernel}/modules.dep`] = '';
  },
  'vrdma.boot': (t) => {
    delete t['/etc/modules-load.d/guestforge-vrdma.conf'];
  },
  'size.no-rocm': (t) => {
    // Its own paragraph, whatever the status ends with (dropPackage may have taken the last one's newline).
    t['/var/lib/dpkg/status'] = `${(t['/var/lib/dpkg/status'] as string).trimEnd()}\n\n${dpkgEntry('libamd-comgr2', '6.0+git20231212.4510c28-3')}`;
  },
  'hygiene.cloud-init-state': (t) => {
    t['/var/lib/cloud/instances/iid-local01/boot-finished'] = '';
  },
  'hygiene.machine-id': (t) => {
    t['/etc/machine-id'] = '0123456789abcdef0123456789abcdef\n';
  },
  'hygiene.ssh-host-keys': (t) => {
    t['/etc/ssh/ssh_host_ed25519_key'] = 'secret\n';
  },
  'hygiene.root-password': (t) => {
    t['/etc/shadow'] = (t['/etc/shadow'] as string).replace('root:*:', 'root:$6$salt$hash:');
  },
  'hygiene.ssh-passwords': (t) => {
    t['/etc/shadow'] = (t['/etc/shadow'] as string).replace('hpc:!:', 'hpc:$6$salt$hash:');
    delete t['/etc/ssh/sshd_config.d/50-cloud-init.conf'];
  },
  'boot.firmware': (t) => {
    t[noBiosCode] = '';
  },
  'boot.secure-boot': (t) => {
    t[`/boot/vmlinuz-${kernel}`] = fakePe(false);
  },
  'verify.complete': (t) => {
    // A link to itself: stat gives ELOOP, which once ended verify with exit 1.
    t['/etc/cloud/cloud.cfg.d/50_loop.cfg'] = { link: '50_loop.cfg' };
  },
};

/** The facts a read of goodTree() gives: the literal the rule logic is tested on. */
function goodFacts(): GuestFacts {
  return {
    osRelease: { PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)', NAME: 'Debian GNU/Linux', VERSION_ID: '12', ID: 'debian' },
    packages: new Map(packages.map((p) => p.split(' ') as [string, string])),
    packageDetails: Object.fromEntries(packages.map((p) => [p.split(' ')[0]!, { arch: 'amd64', source: p }])),
    packageSource: 'dpkg',
    cloudInitDisabledBy: [],
    kernelCmdlines: [],
    cloudConfigs: [
      { path: '/etc/cloud/cloud.cfg', text: 'users: [default]\ncloud_init_modules: [write_files]\n' },
      { path: '/etc/cloud/cloud.cfg.d/90_guestforge_datasource.cfg', text: 'datasource_list: [ NoCloud, None ]\n' },
    ],
    paths: {
      '/workspace': { exists: true, isDir: true, mode: 0o41777 },
      '/home': { exists: true, isDir: true, mode: 0o40755, entries: ['hpc'] },
      '/opt': { exists: true, isDir: true, mode: 0o40755, entries: [] },
      '/opt-vm': { exists: true, isDir: true, mode: 0o40755, entries: ['app'] },
    },
    passwd: [
      { name: 'root', uid: 0, home: '/root', shell: '/bin/bash' },
      { name: 'nobody', uid: 65534, home: '/nonexistent', shell: '/usr/sbin/nologin' },
      { name: 'hpc', uid: 1000, home: '/home/hpc', shell: '/bin/bash' },
    ],
    passwords: { root: 'locked', hpc: 'locked' },
    machineId: { bytes: 0, head: '' },
    sshdConfigs: [
      { path: '/etc/ssh/sshd_config', text: 'Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n' },
      { path: '/etc/ssh/sshd_config.d/50-cloud-init.conf', text: 'PasswordAuthentication no\n' },
    ],
    sshHostKeys: [],
    cloudInstances: [],
    kernels: [kernel],
    kernelPe: { [kernel]: { pe: true, x64: true, signed: true } },
    boot: {
      table: 'gpt', mbrCode: 'grub', biosBoot: { partnum: 14, core: true },
      esp: { partnum: 15, fsType: 'vfat', readable: true, loaders: { 'EFI/BOOT/BOOTX64.EFI': { pe: true, x64: true, signed: true }, 'EFI/BOOT/grubx64.efi': { pe: true, x64: true, signed: true } } },
    },
    rxeModules: { [kernel]: [`/lib/modules/${kernel}/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko`] },
    modulesLoad: [{ path: '/etc/modules-load.d/guestforge-vrdma.conf', text: 'rdma_rxe\n' }],
    systemdUnits: ['guestforge-vrdma.service'],
  };
}

/** The same breakage as `breakers`, on the facts. */
const factBreakers: Record<string, (f: GuestFacts) => void> = {
  'os.family': (f) => (f.osRelease = { NAME: 'Plan 9', ID: 'plan9', VERSION_ID: '4' }),
  'cloud-init.installed': (f) => f.packages.delete('cloud-init'),
  'cloud-init.nocloud': (f) => f.cloudConfigs.push({ path: '/etc/cloud/cloud.cfg.d/95_ec2.cfg', text: 'datasource_list: [ Ec2, None ]\n' }),
  'layout.workspace': (f) => (f.paths['/workspace']!.mode = 0o40755),
  'layout.home': (f) => (f.passwd[2]!.home = '/srv/hpc'),
  'layout.opt-empty': (f) => (f.paths['/opt']!.entries = ['intel']),
  'layout.opt-vm': (f) => (f.paths['/opt-vm'] = { exists: false, isDir: false }),
  'vrdma.packages': (f) => f.packages.delete('ibverbs-providers'),
  'vrdma.kernel': (f) => (f.rxeModules[kernel] = []),
  'vrdma.boot': (f) => (f.modulesLoad = []),
  'size.no-rocm': (f) => f.packages.set('libamd-comgr2', '6.0+git20231212.4510c28-3'),
  'hygiene.cloud-init-state': (f) => (f.cloudInstances = ['iid-local01']),
  'hygiene.machine-id': (f) => (f.machineId = { bytes: 33, head: '0123456789abcdef0123456789abcdef\n' }),
  'hygiene.ssh-host-keys': (f) => (f.sshHostKeys = ['/etc/ssh/ssh_host_ed25519_key']),
  'hygiene.root-password': (f) => (f.passwords.root = 'usable'),
  'hygiene.ssh-passwords': (f) => {
    f.passwords.hpc = 'usable';
    f.sshdConfigs.pop();
  },
  'verify.complete': (f) => (f.unread = [{ path: '/etc/cloud/cloud.cfg.d/50_loop.cfg', why: unreadableWhy }]),
  'boot.firmware': (f) => (f.boot!.mbrCode = 'none'),
  'boot.secure-boot': (f) => (f.kernelPe![kernel]!.signed = false),
};

/** Every rule that can be asked for, asked for: vRDMA, no ROCm, a hybrid firmware claim and Secure Boot. */
const withVrdma: VerifyOptions = { ...defaultVerifyOptions, requireVrdma: true, requireNoRocm: true, firmware: 'hybrid', secureBoot: true };
/** The same, as verify's flags. */
const everyRequirement = ['--require', 'vrdma', '--require', 'no-rocm', '--firmware', 'hybrid', '--require', 'secure-boot'];
const verdicts = (f: GuestFacts, o = withVrdma) => evaluate('literal', f, o).results.map((r) => `${r.id}=${r.verdict}`);

const logic = suite('verify rules over facts (no appliance)');

logic('no rule fails a state its own record accepts; every record says what passes', () => {
  let walked = 0;
  for (const rule of rules) {
    assert.ok(rule.passes.length > 20, `${rule.id} says what counts as a pass`);
    for (const a of rule.acceptable ?? []) {
      const f = goodFacts();
      a.apply(f);
      const r = evaluate('literal', f, withVrdma).results.find((x) => x.id === rule.id)!;
      assert.is.not(r.verdict, 'fail', `${rule.id}, ${a.state}: ${r.evidence}`);
      walked += 1;
    }
  }
  assert.ok(walked >= 15, `${walked} accepted states walked`);
});

logic('NoCloud as cloud-init decides it: disable switches, the kernel command line, ds-identify\'s policy, then the last datasource_list', () => {
  const nocloud = (change: (f: GuestFacts) => void) => {
    const f = goodFacts();
    change(f);
    return datasourceVerdict(f);
  };
  assert.equal(nocloud((f) => (f.cloudInitDisabledBy = ['/etc/cloud/cloud-init.disabled'])), { verdict: 'fail', evidence: '/etc/cloud/cloud-init.disabled exists: cloud-init does not run at all' });
  assert.equal(nocloud((f) => (f.kernelCmdlines = [{ path: '/etc/default/grub', cmdline: 'quiet cloud-init=disabled' }])).verdict, 'fail');
  assert.match(nocloud((f) => (f.dsIdentify = { path: '/etc/cloud/ds-identify.cfg', text: 'policy: disabled\n' })).evidence, /ds-identify policy disabled \(\/etc\/cloud\/ds-identify\.cfg\)/);
  const later = nocloud((f) => f.cloudConfigs.push({ path: '/etc/cloud/cloud.cfg.d/99_ec2.cfg', text: 'datasource_list: [ Ec2, None ]\n' }));
  assert.equal(later, { verdict: 'fail', evidence: 'NoCloud missing: [Ec2, None] from /etc/cloud/cloud.cfg.d/99_ec2.cfg' });
  const forced = nocloud((f) => (f.kernelCmdlines = [{ path: '/boot/grub/grub.cfg', cmdline: 'ro ds=nocloud-net;s=http://10.0.2.2/' }]));
  assert.equal(forced, { verdict: 'pass', evidence: 'ds=nocloud-net on the kernel command line (/boot/grub/grub.cfg)' });
  assert.match(nocloud((f) => (f.cloudConfigs = [])).evidence, /^no datasource_list set: cloud-init's built-in list has NoCloud/);
  // GRUB's defaults count only when no generated boot loader file says otherwise.
  const stale = nocloud((f) => (f.kernelCmdlines = [{ path: '/etc/default/grub', cmdline: 'cloud-init=disabled' }, { path: '/boot/grub/grub.cfg', cmdline: 'root=UUID=x ro' }]));
  assert.is(stale.verdict, 'pass', stale.evidence);
});

logic('kernel command lines from GRUB defaults, grub.cfg\'s first entry, BLS entries, grubenv and /etc/kernel/cmdline', () => {
  assert.equal(kernelCmdlinesOf([
    { path: '/etc/default/grub', text: 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=\'console=ttyS0 ds=nocloud\'\n' },
    { path: '/boot/grub/grub.cfg', text: "menuentry 'Debian' {\n\tlinux\t/boot/vmlinuz-6.1 root=UUID=x ro console=ttyS0\n}\nmenuentry 'old' {\n\tlinux /boot/vmlinuz-5 root=UUID=x ro single\n}\n" },
    { path: '/boot/loader/entries/abc-5.14.conf', text: 'title Rocky\nlinux /vmlinuz-5.14\noptions root=/dev/mapper/rootvg-root ro crashkernel=auto\n' },
    { path: '/boot/grub2/grubenv', text: '# GRUB Environment Block\nkernelopts=root=/dev/sda2 ro\n' },
    { path: '/etc/kernel/cmdline', text: 'root=LABEL=root rw\n' },
  ]), [
    { path: '/etc/default/grub', cmdline: 'quiet console=ttyS0 ds=nocloud' },
    { path: '/boot/grub/grub.cfg', cmdline: 'root=UUID=x ro console=ttyS0' },
    { path: '/boot/loader/entries/abc-5.14.conf', cmdline: 'root=/dev/mapper/rootvg-root ro crashkernel=auto' },
    { path: '/boot/grub2/grubenv', cmdline: 'root=/dev/sda2 ro' },
    { path: '/etc/kernel/cmdline', cmdline: 'root=LABEL=root rw' },
  ]);
});

logic('fstab: spec, absolute mount point, type and options; comments, swap, relative and `..` mount points left out', () => {
  assert.equal(parseFstab('# c\nUUID=a / ext4 defaults 0 1\nPARTUUID=b /boot/efi vfat umask=0077 0 1\n/dev/sda3 none swap sw 0 0\nLABEL=x relative ext4\nLABEL=y /a/../etc ext4\nLABEL=z /srv\n'), [
    { spec: 'UUID=a', mountpoint: '/', type: 'ext4', options: 'defaults' },
    { spec: 'PARTUUID=b', mountpoint: '/boot/efi', type: 'vfat', options: 'umask=0077' },
    { spec: 'LABEL=z', mountpoint: '/srv', type: 'auto', options: 'defaults' },
  ]);
});

logic('every rule has a breaker, on the disk and on the facts', () => {
  assert.equal(Object.keys(breakers).sort(), rules.map((r) => r.id).sort());
  assert.equal(Object.keys(factBreakers).sort(), rules.map((r) => r.id).sort());
});

logic('a good guest passes every rule, vRDMA included', () => {
  const report = evaluate('literal', goodFacts(), withVrdma);
  assert.ok(report.ok);
  for (const r of report.results) assert.is(r.verdict, 'pass', `${r.id}: ${r.evidence}`);
});

logic('without vRDMA or no-ROCm required those rules are skipped, not passed', () => {
  const facts = goodFacts();
  factBreakers['vrdma.kernel']!(facts);
  factBreakers['size.no-rocm']!(facts);
  assert.equal(verdicts(facts, defaultVerifyOptions), rules.map((r) => `${r.id}=${r.id.startsWith('vrdma.') || r.id === 'size.no-rocm' || r.id === 'boot.secure-boot' ? 'skip' : 'pass'}`));
});

logic('size.no-rocm is asked for by a bootstrapped Debian 13 profile only: not 12, not an imported 13 base, not with boot.keep', async () => {
  const load = async (name: string) => (await loadProfileOrThrow(join(root, 'profiles', name))).profile;
  const d13 = await load('debian-13-hpc.yaml');
  assert.is(verifyOptionsOf(d13, guestFamilies).requireNoRocm, true);
  assert.is(verifyOptionsOf(await load('debian-12-hpc.yaml'), guestFamilies).requireNoRocm, false);
  assert.is(verifyOptionsOf({ ...d13, boot: { keep: ['ucx-no-rocm'] } }, guestFamilies).requireNoRocm, false);
  const { bootstrap: _, ...imported } = d13.base;
  assert.is(verifyOptionsOf({ ...d13, base: { ...imported, image: { path: '/i.qcow2', sha256: 'a'.repeat(64), format: 'qcow2' } } } as typeof d13, guestFamilies).requireNoRocm, false, 'the stub is made at bootstrap: an imported base keeps its own');
});

logic('size.no-rocm names every ROCm and LLVM package, and the stub that stands in for them', () => {
  const facts = goodFacts();
  for (const name of ['libamdhip64-5', 'libhsa-runtime64-1', 'libhsakmt1', 'libamd-comgr2', 'rocm-smi']) facts.packages.set(name, '1');
  facts.packages.set('libllvm19', '1:19.1.7-3');
  const byId = new Map(evaluate('literal', facts, withVrdma).results.map((r) => [r.id, r]));
  assert.is(byId.get('size.no-rocm')!.evidence, 'installed: libamd-comgr2, libamdhip64-5, libhsa-runtime64-1, libhsakmt1, rocm-smi', 'LLVM a profile wants for itself (clang, mesa) is not ROCm');
  const llvmOnly = goodFacts();
  llvmOnly.packages.set('libllvm19', '1:19.1.7-3');
  assert.is(evaluate('literal', llvmOnly, withVrdma).results.find((r) => r.id === 'size.no-rocm')!.verdict, 'pass');
  const clean = goodFacts();
  clean.packages.set('guestforge-no-rocm', '1');
  clean.packages.set('libucx0', '1.18.1+ds-2+b1');
  assert.is(evaluate('literal', clean, withVrdma).results.find((r) => r.id === 'size.no-rocm')!.evidence, 'none; guestforge-no-rocm 1 stands in for them');
});

for (const [id, breakIt] of Object.entries(factBreakers)) {
  logic(`${id}: only that rule fails`, () => {
    const facts = goodFacts();
    breakIt(facts);
    const report = evaluate('literal', facts, withVrdma);
    assert.not.ok(report.ok);
    assert.equal(report.results.filter((r) => r.verdict !== 'pass').map((r) => `${r.id}=${r.verdict}`), [`${id}=fail`]);
  });
}

logic('boot.secure-boot: a kernel verify did not read is not a signed one; RedHat\'s GRUB in its vendor folder counts, and must be signed too', () => {
  const verdict = (change: (f: GuestFacts) => void) => {
    const f = goodFacts();
    change(f);
    return evaluate('literal', f, withVrdma).results.find((r) => r.id === 'boot.secure-boot')!;
  };
  const unreadKernel = verdict((f) => { f.kernels.push('6.1.0-98-amd64'); });
  assert.is(unreadKernel.verdict, 'fail');
  assert.is(unreadKernel.evidence, 'vmlinuz-6.1.0-98-amd64 is not read');
  const signed = { pe: true, x64: true, signed: true };
  const rocky = { 'EFI/BOOT/BOOTX64.EFI': signed, 'EFI/BOOT/fbx64.efi': signed, 'EFI/rocky/shimx64.efi': signed, 'EFI/rocky/grubx64.efi': signed };
  assert.is(verdict((f) => { f.boot!.esp!.loaders = rocky; }).verdict, 'pass');
  assert.is(verdict((f) => { f.boot!.esp!.loaders = { ...rocky, 'EFI/rocky/grubx64.efi': { ...signed, signed: false } }; }).evidence, 'EFI/rocky/grubx64.efi is not signed');
});

logic('the evidence names what was wrong', () => {
  const facts = goodFacts();
  factBreakers['layout.opt-empty']!(facts);
  factBreakers['vrdma.kernel']!(facts);
  const byId = new Map(evaluate('literal', facts, withVrdma).results.map((r) => [r.id, r.evidence]));
  assert.match(byId.get('layout.opt-empty')!, /\/opt holds intel: install apps to \/opt-vm/);
  assert.match(byId.get('vrdma.kernel')!, new RegExp(`kernel without rdma_rxe: ${kernel}`));
});

logic('passwords as pam_unix and glibc read them: the passwd field unless x, then the first shadow line; duplicates named', () => {
  const locked = 'root:!:19000:0:99999:7:::\n';
  assert.equal(accountPasswords('toor:$6$x$y:0:0::/root:/bin/sh\n', ''), { toor: 'usable' }, 'a hash in passwd needs no shadow entry');
  assert.equal(accountPasswords('root:x:0:0:root:/root:/bin/bash\n', locked), { root: 'locked' });
  assert.equal(accountPasswords('root:x:0:0:root:/root:/bin/bash\n', ''), {}, 'x with no shadow line: no password opens it');
  // Each bypass the security review reproduced (issue 32), as the text an image would hold.
  const bypasses: [string, string, string, RegExp][] = [
    ['root with an empty passwd field over a locked shadow line', 'root::0:0:root:/root:/bin/bash\n', locked, /root: empty/],
    ['a hash in the passwd field of another uid-0 account', 'root:x:0:0:root:/root:/bin/bash\ntoor:$6$salt$hash:0:0::/root:/bin/sh\n', `${locked}toor:!:19000::::::\n`, /toor: usable/],
    ['a second shadow line for root after a locked one', 'root:x:0:0:root:/root:/bin/bash\n', `${locked}root:$6$salt$hash:19000::::::\n`, /two lines of passwd or shadow.*root/],
    ['a usable shadow line before a locked one', 'root:x:0:0:root:/root:/bin/bash\n', `root:$6$salt$hash:19000::::::\n${locked}`, /two lines of passwd or shadow.*root/],
    ['root on two passwd lines', 'root:x:0:0:root:/root:/bin/bash\nroot:x:0:0::/:/bin/sh\n', locked, /two lines of passwd or shadow.*root/],
    // From the review of this change: glibc skips leading blanks, and takes a line short of home and shell.
    ['a blank before a usable shadow line for root', 'root:x:0:0:root:/root:/bin/bash\n', ` root:$6$salt$hash:19000::::::\n${locked}`, /two lines of passwd or shadow.*root/],
    ['a uid-0 account on a short passwd line', 'root:x:0:0:root:/root:/bin/bash\ntoor:$6$salt$hash:0:0\n', locked, /toor: usable/],
  ];
  for (const [what, passwd, shadow, evidence] of bypasses) {
    const facts = goodFacts();
    facts.passwd = parsePasswd(passwd);
    facts.passwords = accountPasswords(passwd, shadow);
    const result = evaluate('literal', facts, withVrdma).results.find((r) => r.id === 'hygiene.root-password')!;
    assert.is(result.verdict, 'fail', what);
    assert.match(result.evidence, evidence, what);
  }
});

logic('every uid-0 account counts, not only the one named root', () => {
  const facts = goodFacts();
  facts.passwd.push({ name: 'toor', uid: 0, home: '/root', shell: '/bin/sh' });
  facts.passwords.toor = 'usable';
  const byId = new Map(evaluate('literal', facts, withVrdma).results.map((r) => [r.id, r]));
  assert.is(byId.get('hygiene.root-password')!.verdict, 'fail');
  assert.match(byId.get('hygiene.root-password')!.evidence, /toor: usable/);
});

logic('sshd settings: first value wins, Include where it stands, Match blocks are not global', () => {
  const cfg = (main: string, ...d: string[]) => [{ path: '/etc/ssh/sshd_config', text: main }, ...d.map((text, i) => ({ path: `/etc/ssh/sshd_config.d/${i}0-x.conf`, text }))];
  assert.equal(sshdSetting(cfg('PasswordAuthentication no\nPasswordAuthentication yes\n'), 'passwordauthentication'), { value: 'no', from: '/etc/ssh/sshd_config' });
  assert.equal(sshdSetting(cfg('Include sshd_config.d/*.conf\nPasswordAuthentication no\n', 'PasswordAuthentication yes'), 'PasswordAuthentication')?.value, 'yes');
  assert.equal(sshdSetting(cfg('Match User x\n  PasswordAuthentication yes\n'), 'PasswordAuthentication'), undefined);
  assert.equal(sshdSetting(cfg('PasswordAuthentication=No # comment\n'), 'PasswordAuthentication')?.value, 'no');
  assert.equal(sshdSetting(cfg('PasswordAuthentication "yes"\n'), 'PasswordAuthentication')?.value, 'yes');
  const kbd = goodFacts();
  kbd.passwords.hpc = 'usable';
  kbd.sshdConfigs = cfg('PasswordAuthentication no\nUsePAM yes\n');
  const viaPam = evaluate('literal', kbd, withVrdma).results.find((r) => r.id === 'hygiene.ssh-passwords')!;
  assert.is(viaPam.verdict, 'fail', viaPam.evidence);
  assert.match(viaPam.evidence, /KbdInteractiveAuthentication yes \(the default\) with UsePAM yes/);
  const facts = goodFacts();
  facts.sshdConfigs = cfg('PermitEmptyPasswords yes\nPasswordAuthentication no\n');
  const result = evaluate('literal', facts, withVrdma).results.find((r) => r.id === 'hygiene.ssh-passwords')!;
  assert.is(result.verdict, 'fail');
  assert.match(result.evidence, /PermitEmptyPasswords yes/);
});

logic('a /var/lib/dbus/machine-id of its own is a shared id too', () => {
  const facts = goodFacts();
  facts.dbusMachineId = { bytes: 33, head: '0123456789abcdef0123456789abcdef\n' };
  const result = evaluate('literal', facts, withVrdma).results.find((r) => r.id === 'hygiene.machine-id')!;
  assert.is(result.verdict, 'fail');
  assert.match(result.evidence, /\/var\/lib\/dbus\/machine-id is a file of its own holding an id \(33 bytes\)/);
});

logic('machine-id: empty, missing and systemd\'s `uninitialized` pass (a fresh id at first boot); a real id fails naming the file', () => {
  const verdict = (machineId: { bytes: number; head: string } | undefined) => {
    const facts = goodFacts();
    if (machineId) facts.machineId = machineId;
    else delete facts.machineId;
    return evaluate('literal', facts, withVrdma).results.find((r) => r.id === 'hygiene.machine-id')!;
  };
  assert.is(verdict({ bytes: 14, head: 'uninitialized\n' }).verdict, 'pass');
  assert.match(verdict({ bytes: 14, head: 'uninitialized\n' }).evidence, /uninitialized \(systemd's first-boot marker\)/);
  assert.is(verdict({ bytes: 0, head: '' }).evidence, '/etc/machine-id empty');
  assert.is(verdict(undefined).evidence, '/etc/machine-id absent');
  const real = verdict({ bytes: 33, head: '4f1c2a0d9e8b7c6a5f4e3d2c1b0a9f8e\n' });
  assert.is(real.verdict, 'fail');
  assert.match(real.evidence, /^\/etc\/machine-id holds an id \(33 bytes\)/);
});

logic.run();

const v = timed(suite('verify (real read-only guestfish on hand-made disks)'));

v('the good disk: exit 0, every rule passes, one JUnit case per rule, and the facts read are the literal', async () => {
  const image = await makeImage('good', goodTree());
  const junit = join(tmp, 'verify.xml');
  const r = await verify(image, ...everyRequirement, '--junit', junit);
  assert.is(r.exitCode, 0, r.stderr);
  for (const result of r.report!.results) assert.is(result.verdict, 'pass', `${result.id}: ${result.evidence}`);
  const expected = evaluate(image, goodFacts(), withVrdma);
  assert.equal(r.report!.results, expected.results, 'the disk reads as the facts literal');
  assert.equal(r.report!.packages, expected.packages);
  const xml = await readFile(junit, 'utf8');
  assert.is((xml.match(/<testcase /g) ?? []).length, rules.length);
});

v('a disk with every rule broken: exit 1 and every rule fails', async () => {
  const tree = goodTree();
  for (const breakIt of Object.values(breakers)) breakIt(tree);
  const r = await verify(await makeImage('all-broken', tree), ...everyRequirement);
  assert.is(r.exitCode, 1, r.stderr);
  assert.equal(r.report!.results.map((x) => `${x.id}=${x.verdict}`), rules.map((x) => `${x.id}=fail`));
});

v('firmware as the disk says it: a BIOS-only MBR disk and a UEFI-only GPT disk (unsigned loader) made by hand, each failing a hybrid claim by the firmware it lacks', async () => {
  const tree = goodTree();
  const biosOnly = await verify(await makeBootDisk(tmp, 'bios-only', tree, { table: 'dos', bios: true }), '--firmware', 'hybrid');
  assert.is(biosOnly.exitCode, 1, biosOnly.stderr);
  const b = biosOnly.report!.results.find((x) => x.id === 'boot.firmware')!;
  assert.is(b.verdict, 'fail');
  assert.is(b.evidence, 'claims hybrid, but UEFI cannot boot it: BIOS (GRUB\'s boot code in the first sector); not UEFI');
  assert.equal(biosOnly.report!.results.filter((x) => x.verdict === 'fail').map((x) => x.id), ['boot.firmware'], 'nothing else is wrong with it');
  const uefiOnly = await verify(await makeBootDisk(tmp, 'uefi-only', tree, { table: 'gpt', bios: false, esp: { 'EFI/BOOT/BOOTX64.EFI': fakePe(false) } }), '--firmware', 'hybrid', '--require', 'secure-boot');
  assert.is(uefiOnly.exitCode, 1, uefiOnly.stderr);
  const byId = new Map(uefiOnly.report!.results.map((x) => [x.id, x]));
  assert.is(byId.get('boot.firmware')!.evidence, 'claims hybrid, but BIOS cannot boot it: not BIOS; UEFI (EFI/BOOT/BOOTX64.EFI on ESP partition 15, unsigned)');
  assert.is(byId.get('boot.secure-boot')!.verdict, 'fail');
  assert.is(byId.get('boot.secure-boot')!.evidence, 'EFI/BOOT/BOOTX64.EFI is not signed; no grubx64.efi on the ESP');
});

v('a hostile disk within bounds: a 2 GiB rpm database and os-release (sparse), 3,000 cloud.cfg.d files and a loop of links give a verdict, exit 1, naming each', async () => {
  const tree: Tree = {
    '/usr/bin/true': '',
    '/etc/passwd': 'root:x:0:0:root:/root:/bin/bash\n',
    '/etc/shadow': 'root:*:19000:0:99999:7:::\n',
    '/var/lib': { dir: true },
    '/var/lib/cloud': { link: 'cloud' },
  };
  for (let i = 0; i < 3000; i += 1) tree[`/etc/cloud/cloud.cfg.d/${String(i).padStart(4, '0')}.cfg`] = `# ${i}\n`;
  const image = await makeTreeImage(tmp, 'hostile', tree, async (dir) => {
    await execa('mkdir', ['-p', join(dir, 'var/lib/rpm')]);
    await execa('truncate', ['-s', '2G', join(dir, 'var/lib/rpm/Packages'), join(dir, 'etc/os-release')]);
  });
  const leftBefore = (await readdir(tmpdir())).filter((n) => n.startsWith('guestforge-rpmdb-')).length;
  const r = await verify(image);
  assert.is(r.exitCode, 1, r.stderr);
  const complete = r.report!.results.find((x) => x.id === 'verify.complete')!;
  assert.is(complete.verdict, 'fail');
  assert.match(complete.evidence, /\/etc\/cloud\/cloud\.cfg\.d\/\*\.cfg \(3000 matches, more than the 256 verify reads: none judged\)/);
  assert.match(complete.evidence, /\/etc\/os-release \(2048 MiB, more than the 1 MiB verify reads of such a file\)/);
  assert.match(complete.evidence, /\/var\/lib\/rpm \(2048 MiB of files, more than the 256 MiB verify copies out\)/);
  assert.match(complete.evidence, /\/var\/lib\/cloud\/instances \(libguestfs cannot stat it/);
  assert.is((await readdir(tmpdir())).filter((n) => n.startsWith('guestforge-rpmdb-')).length, leftBefore, 'no copy of the database left');
});

v('usage errors exit 2: a missing file, a file that is no disk image', async () => {
  const missing = await verify(join(tmp, 'nope.qcow2'));
  assert.is(missing.exitCode, 2);
  assert.match(missing.stderr, /no such file/);
  const text = join(tmp, 'notes.txt');
  await writeFile(text, 'not a disk\n');
  const notDisk = await verify(text);
  assert.is(notDisk.exitCode, 2);
  assert.match(notDisk.stderr, /not a disk image/);
});

v.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

v.run();
