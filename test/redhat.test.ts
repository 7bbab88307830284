/**
 * RedHat family. No RPM repository or RedHat image is reachable here, so:
 * the generated user-data of the redhat driver is compared with the Debian
 * one (what differs and why), and a small disk whose os-release says Rocky 9,
 * with SELINUX=enforcing and a real rpm database (made by the host's rpm
 * from stand-in packages), goes through the seal stage's SELinux step and
 * through `guestforge verify` with real libguestfs. Not covered: dnf in a
 * build VM, booting a Rocky image, the autorelabel reboot.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { smokeUserData, smokeTargetOf } from '../src/cloudinit/userdata.ts';
import { buildUserData } from '../src/os/linux-seed.ts';
import { run } from '../src/exec/run.ts';
import { GuestSession } from '../src/guestfs/session.ts';
import { debian } from '../src/os/debian/index.ts';
import { redhat, selinuxConfig } from '../src/os/redhat/index.ts';
import { loadProfileOrThrow } from '../src/loader/index.ts';
import type { Profile } from '../src/profile/schema.ts';
import { mountGuest } from '../src/verify/mount.ts';
import { makeImage, type Tree } from './helpers/tree-image.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const env = { XDG_CACHE_HOME: process.env.GUESTFORGE_TEST_CACHE ?? join(root, '.test-cache'), CI: '1' };
const tmp = await mkdtemp(join(tmpdir(), 'gf-redhat-'));

const rocky = (await loadProfileOrThrow(join(root, 'profiles', 'rocky-9-hpc.yaml'))).profile;
const deb = (await loadProfileOrThrow(join(root, 'profiles', 'debian-12-hpc.yaml'))).profile;
const withVrdma = (p: Profile): Profile => ({ ...p, vrdma: { ...p.vrdma, enabled: true } });
type Config = Record<string, any>;
const writeFilePaths = (c: Config) => (c.write_files as { path: string }[]).map((f) => f.path);

const unit = suite('redhat driver: user-data against the Debian driver');

unit('both families get the same NoCloud-only datasource file, reporter and power-off', async () => {
  const r = (await buildUserData(rocky, redhat, 'N')) as Config;
  const d = (await buildUserData(deb, debian, 'N')) as Config;
  for (const c of [r, d]) {
    const ds = (c.write_files as { path: string; content: string }[]).find((f) => f.path === '/etc/cloud/cloud.cfg.d/90_guestforge_datasource.cfg');
    assert.is(ds?.content, 'datasource_list: [ NoCloud, None ]\n');
    assert.equal(c.power_state.condition, ['sh', '/var/lib/guestforge/report.sh', 'N']);
    assert.ok(writeFilePaths(c).includes('/var/lib/guestforge/run-commands.sh'));
  }
});

unit('boot trims: the family\'s own, apt\'s early and the rest by the last runcmd of the build VM; boot.keep leaves one out', async () => {
  const d = (await buildUserData(deb, debian, 'N')) as Config;
  const r = (await buildUserData(rocky, redhat, 'N')) as Config;
  assert.ok(writeFilePaths(d).includes('/etc/apt/apt.conf.d/90guestforge-no-translations'), 'apt is trimmed before the build VM installs packages');
  const runcmd = (c: Config) => JSON.stringify(c.runcmd);
  const last = (c: Config) => JSON.stringify((c.runcmd as unknown[]).slice(-4));
  assert.match(last(d), /92_guestforge_grub_dpkg\.cfg/, 'grub_dpkg runs once in the build VM, then never');
  assert.not.ok(writeFilePaths(d).some((p) => p.includes('grub_dpkg')));
  assert.ok(runcmd(d).includes('["systemctl","mask","--quiet","e2scrub_reap.service"]'));
  assert.match(runcmd(d), /systemd-networkd-wait-online\.service\.d\/90-guestforge-any\.conf/);
  assert.match(runcmd(d), /systemd-networkd-wait-online --any/);
  assert.not.match(runcmd(r), /wait-online/, 'RedHat keeps NetworkManager');
  assert.not.ok(writeFilePaths(r).some((p) => p.startsWith('/etc/apt/')) || runcmd(r).includes('grub_dpkg'), 'no Debian trims on RedHat');
  assert.match(runcmd(r), /keys_to_console/);
  const kept = (await buildUserData({ ...deb, boot: { keep: ['cloud-init-grub-dpkg', 'e2scrub-reap'] } }, debian, 'N')) as Config;
  assert.not.ok(runcmd(kept).includes('grub_dpkg'));
  assert.not.ok(runcmd(kept).includes('e2scrub'));
});

unit('only Debian pins the network renderer (networkd), in user-data only for an imported base; RedHat keeps NetworkManager', async () => {
  const r = (await buildUserData(rocky, redhat, 'N')) as Config;
  const d = (await buildUserData(deb, debian, 'N')) as Config;
  assert.ok(deb.base.bootstrap, 'the default profile bootstraps');
  assert.is(d.system_info, undefined, 'a bootstrapped base has it in cloud.cfg.d (customize.sh); system_info in user-data is deprecated from cloud-init 24.2');
  const imported = (await buildUserData({ ...deb, base: { image: { path: '/x.qcow2', sha256: '0'.repeat(64), format: 'qcow2' } } } as typeof deb, debian, 'N')) as Config;
  assert.equal(imported.system_info, { network: { renderers: ['networkd'] } });
  assert.is(r.system_info, undefined);
});

unit('vRDMA packages come from each family\'s driver', async () => {
  const r = (await buildUserData(withVrdma(rocky), redhat, 'N')) as Config;
  const d = (await buildUserData(withVrdma(deb), debian, 'N')) as Config;
  assert.ok(['rdma-core', 'libibverbs', 'libibverbs-utils', 'librdmacm-utils', 'infiniband-diags', 'perftest'].every((p) => r.packages.includes(p)));
  assert.not.ok(r.packages.includes('ibverbs-providers'));
  assert.ok(d.packages.includes('ibverbs-providers'));
  const kernelScript = (c: Config) => (c.write_files as { path: string; content: string }[]).find((f) => f.path.endsWith('vrdma-kernel.sh'))!.content;
  assert.match(kernelScript(r), /kernel-modules-extra-\$v/);
  assert.match(kernelScript(d), /linux-image-amd64/);
});

unit('the smoke user-data does not depend on the family, only on whether the image has an apps volume', async () => {
  // The bootstrapped Debian image has one (its layout.opt-vm check also asks that it is mounted); the imported Rocky image has none.
  assert.is(smokeTargetOf(deb, debian.appsVolume?.(deb)).appsVolumeLabel, 'gf-apps');
  assert.is(smokeTargetOf(rocky, redhat.appsVolume?.(rocky)).appsVolumeLabel, undefined);
  const { appsVolumeLabel: _, ...debWithout } = smokeTargetOf(deb, debian.appsVolume?.(deb));
  assert.equal(await smokeUserData(smokeTargetOf(rocky, redhat.appsVolume?.(rocky)), 'N'), await smokeUserData(debWithout, 'N'));
});

unit('SELinux config parsing', () => {
  assert.equal(selinuxConfig('# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n'), { mode: 'enforcing', type: 'targeted' });
  assert.equal(selinuxConfig('SELINUX=disabled\n'), { mode: 'disabled', type: 'targeted' });
  assert.equal(selinuxConfig(''), { type: 'targeted' });
});

/** Stand-in rpms (no files, just names and versions) recorded in the tree's rpm database by the host's rpm. */
async function rpmDatabase(dir: string, packages: [string, string, string][]): Promise<void> {
  const top = join(tmp, 'rpmbuild');
  for (const [name, version, release] of packages) {
    const spec = join(tmp, `${name}.spec`);
    await writeFile(spec, `Name: ${name}\nVersion: ${version}\nRelease: ${release}\nSummary: stand-in\nLicense: MIT\nBuildArch: noarch\n%description\nstand-in\n%files\n`);
    await run(['rpmbuild', '-bb', '--quiet', '--define', `_topdir ${top}`, spec]);
  }
  await mkdir(join(dir, 'var/lib/rpm'), { recursive: true });
  const rpm = ['rpm', '--root', dir, '--dbpath', '/var/lib/rpm'];
  await run([...rpm, '--initdb']);
  const built = (await run(['find', join(top, 'RPMS'), '-name', '*.rpm'])).stdout.trim().split('\n');
  await run([...rpm, '-i', '--justdb', '--nodeps', '--noscripts', ...built]);
}

const rockyTree: Tree = {
  '/etc/os-release': 'NAME="Rocky Linux"\nVERSION="9.5 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.5"\nPRETTY_NAME="Rocky Linux 9.5 (Blue Onyx)"\n',
  '/etc/redhat-release': 'Rocky Linux release 9.5 (Blue Onyx)\n',
  '/etc/rocky-release': 'Rocky Linux release 9.5 (Blue Onyx)\n',
  '/etc/fstab': 'LABEL=rootfs / ext4 defaults 0 1\n',
  '/etc/selinux/config': 'SELINUX=enforcing\nSELINUXTYPE=targeted\n',
  '/etc/passwd': 'root:x:0:0:root:/root:/bin/bash\nrocky:x:1000:1000::/home/rocky:/bin/bash\n',
  '/etc/shadow': 'root:!!:19000:0:99999:7:::\n',
  '/etc/machine-id': '',
  '/etc/cloud/cloud.cfg': 'datasource_list: [ NoCloud, ConfigDrive, None ]\n',
  '/usr/bin/true': '',
  '/bin': { link: 'usr/bin' },
  '/workspace': { dir: true, mode: 0o1777 },
  '/home/rocky': { dir: true },
  '/opt-vm': { dir: true },
};

const offline = timed(suite('redhat offline: a Rocky 9 disk with SELinux enforcing (real libguestfs)'));
let image = '';

offline.before(async () => {
  image = await makeImage(tmp, 'rocky', rockyTree, (dir) => rpmDatabase(dir, [
    ['cloud-init', '23.4', '19.el9.0.1'],
    ['rocky-release', '9.5', '1.2.el9'],
  ]));
});

offline('the seal stage\'s SELinux step schedules a relabel (this libguestfs has no setfiles)', async () => {
  const session = await GuestSession.open([{ path: image, format: 'raw' }], { accel: 'tcg' });
  let notes: string[];
  try {
    await mountGuest(session, { readonly: false, inspect: true });
    notes = await redhat.offlineFixups(rocky, session);
    const relabelled = await session.bool('feature-available', 'selinuxrelabel');
    if (relabelled) assert.match(notes.join('\n'), /relabelled offline/);
    else {
      assert.ok(await session.bool('is-file', '/.autorelabel'), notes.join('\n'));
      assert.match(notes.join('\n'), /SELinux enforcing: relabel scheduled for first boot/);
    }
    assert.equal(await redhat.offlineFixups({ ...rocky, os: { ...rocky.os, selinux: 'keep' } as Profile['os'] }, session), []);
  } finally {
    await session.close();
  }
});

offline('verify detects the RedHat family and reads cloud-init from the rpm database', async () => {
  const r = await execa('node', [cli, 'verify', image, '--json'], { env, reject: false, timeout: 5 * 60_000 });
  assert.ok(r.stdout.startsWith('{'), r.stderr);
  const report = JSON.parse(r.stdout) as { os: { family: string; version: string }; results: { id: string; verdict: string; evidence: string }[] };
  const result = (id: string) => report.results.find((x) => x.id === id)!;
  assert.is(report.os.family, 'redhat');
  assert.is(result('os.family').verdict, 'pass');
  assert.match(result('os.family').evidence, /Rocky Linux 9\.5 .*redhat family, version 9\.5/);
  assert.is(result('cloud-init.installed').verdict, 'pass', result('cloud-init.installed').evidence);
  assert.match(result('cloud-init.installed').evidence, /cloud-init 23\.4-19\.el9\.0\.1 \(rpm database\)/);
  assert.is(result('cloud-init.nocloud').verdict, 'pass');
  assert.is(r.exitCode, 0, r.stderr);
});

offline.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

unit.run();
offline.run();
