/**
 * `guestforge verify` on small hand-made disks: a good guest tree turned into
 * an ext4 image by mke2fs -d (no appliance needed to make it), then one
 * variant per rule with exactly that thing broken. Each image is checked
 * through the CLI with a real read-only guestfish launch, as a user would.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { rules } from '../src/verify/rules.ts';
import { makeImage as makeTreeImage, type Tree } from './helpers/tree-image.ts';

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
    [`/boot/vmlinuz-${kernel}`]: 'not really a kernel\n',
    [`/lib/modules/${kernel}/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko`]: 'not really a module\n',
    '/usr/bin/true': '',
    '/bin': { link: 'usr/bin' },
    '/workspace': { dir: true, mode: 0o1777 },
    '/home/hpc': { dir: true, mode: 0o755 },
    '/opt': { dir: true },
    '/opt-vm/app': { dir: true },
    '/var/lib/cloud': { dir: true },
    '/etc/ssh': { dir: true },
  };
}

const makeImage = (name: string, tree: Tree) => makeTreeImage(tmp, name, tree);

interface Report {
  ok: boolean;
  results: { id: string; verdict: string; evidence: string }[];
}

async function verify(image: string, ...args: string[]) {
  const r = await execa('node', [cli, 'verify', image, '--json', ...args], { env, reject: false, timeout: 5 * 60_000 });
  return { exitCode: r.exitCode, stderr: r.stderr, report: r.stdout ? (JSON.parse(r.stdout) as Report) : undefined };
}

/** What each rule breaks in the good tree. */
const breakers: Record<string, (t: Tree) => void> = {
  'os.family': (t) => {
    t['/etc/os-release'] = 'NAME="Plan 9"\nID=plan9\nVERSION_ID="4"\n';
    delete t['/etc/debian_version'];
  },
  'cloud-init.installed': (t) => {
    t['/var/lib/dpkg/status'] = packages.filter((p) => !p.startsWith('cloud-init')).map((p) => dpkgEntry(p.split(' ')[0]!, p.split(' ')[1]!)).join('\n');
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
    t['/var/lib/dpkg/status'] = packages.filter((p) => !p.startsWith('ibverbs')).map((p) => dpkgEntry(p.split(' ')[0]!, p.split(' ')[1]!)).join('\n');
  },
  'vrdma.kernel': (t) => {
    delete t[`/lib/modules/${kernel}/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko`];
    t[`/lib/modules/${kernel}/modules.dep`] = '';
  },
  'vrdma.boot': (t) => {
    delete t['/etc/modules-load.d/guestforge-vrdma.conf'];
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
};

const v = suite('verify (real read-only guestfish on hand-made disks)');

v('every rule has a breaker in this test', () => {
  assert.equal(Object.keys(breakers).sort(), rules.map((r) => r.id).sort());
});

v('a good guest passes every rule, vRDMA included (exit 0)', async () => {
  const r = await verify(await makeImage('good', goodTree()), '--require', 'vrdma');
  assert.is(r.exitCode, 0, r.stderr);
  for (const result of r.report!.results) assert.is(result.verdict, 'pass', `${result.id}: ${result.evidence}`);
});

v('without --require vrdma the vRDMA rules are skipped, not passed', async () => {
  const tree = goodTree();
  breakers['vrdma.kernel']!(tree);
  const r = await verify(await makeImage('novrdma', tree));
  assert.is(r.exitCode, 0, r.stderr);
  for (const result of r.report!.results) {
    assert.is(result.verdict, result.id.startsWith('vrdma.') ? 'skip' : 'pass', `${result.id}: ${result.evidence}`);
  }
});

for (const [id, breakIt] of Object.entries(breakers)) {
  v(`${id}: only that rule fails (exit 1)`, async () => {
    const tree = goodTree();
    breakIt(tree);
    const r = await verify(await makeImage(id, tree), '--require', 'vrdma');
    assert.is(r.exitCode, 1, r.stderr);
    const failed = r.report!.results.filter((x) => x.verdict !== 'pass');
    assert.equal(failed.map((x) => `${x.id}=${x.verdict}`), [`${id}=fail`], JSON.stringify(failed));
  });
}

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

v('--junit writes one test case per rule', async () => {
  const junit = join(tmp, 'verify.xml');
  const image = await makeImage('junit', goodTree());
  const r = await execa('node', [cli, 'verify', image, '--junit', junit], { env, reject: false });
  assert.is(r.exitCode, 0, r.stderr);
  const xml = await (await import('node:fs/promises')).readFile(junit, 'utf8');
  assert.is((xml.match(/<testcase /g) ?? []).length, rules.length);
  assert.match(r.stdout, /PASS {2}layout\.opt-empty/);
});

v.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

v.run();
