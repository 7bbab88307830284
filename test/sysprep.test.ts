/**
 * The seal stage's sysprep operations, without a VM: the records (each rule it names exists, the
 * hygiene rules of a clean state each have their operation, `verify --explain` names it), and the
 * script composed from them run for real by the host's sh in a chroot over a made-up guest root
 * (the host's /usr bound read-only in a mount namespace of its own): every operation cleans what
 * its record says, and leaves alone what it does not name.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { sysprepDone, sysprepOf, sysprepOperations, sysprepScript } from '../src/guestfs/sysprep.ts';
import { rules } from '../src/verify/rules.ts';
import { explainRule } from '../src/commands/verify.ts';

const s = suite('sysprep operations');

s('each operation is one record: unique id, one-line text, a rule that exists; the clean-state rules each have theirs', () => {
  const ids = sysprepOperations.map((op) => op.id);
  assert.equal(ids.length, new Set(ids).size, 'an id twice');
  for (const op of sysprepOperations) {
    assert.not.match(`${op.what}${op.why}`, /\n/, `${op.id}: its text goes into a shell comment and a table row`);
    if (op.rule) assert.ok(rules.some((r) => r.id === op.rule), `${op.id} names no rule: ${op.rule}`);
  }
  for (const rule of ['hygiene.cloud-init-state', 'hygiene.machine-id', 'hygiene.ssh-host-keys']) assert.is(sysprepOf(rule).length, 1, rule);
  assert.match(explainRule(rules.find((r) => r.id === 'hygiene.ssh-host-keys')!).join('\n'), /made so by: the seal stage's sysprep operation ssh-hostkeys/);
});

s('the script: set -e first, every operation in order, the done word last', () => {
  const script = sysprepScript();
  const lines = script.split('\n');
  assert.is(lines[1], 'set -e');
  assert.is(lines.at(-2), `echo ${sysprepDone}`);
  let at = 0;
  for (const op of sysprepOperations) {
    const found = script.indexOf(op.script, at);
    assert.ok(found > at, `${op.id} in order`);
    at = found;
  }
});

/** A made-up guest: what a build VM leaves behind, and things no operation names. */
const guest: Record<string, string> = {
  'var/lib/cloud/instances/iid-local01/sem/config_runcmd': 'x',
  'var/lib/cloud/instance': '->/var/lib/cloud/instances/iid-local01',
  'var/lib/cloud/seed/nocloud/user-data': 'secret',
  'var/lib/cloud/data/instance-id': 'iid-local01',
  'var/lib/cloud/sem/config_scripts_per_once.once': 'x',
  'var/lib/cloud/handlers/x': 'x',
  'var/lib/cloud/scripts/per-boot/keep.sh': 'kept',
  'etc/machine-id': '0123456789abcdef0123456789abcdef\n',
  'var/lib/dbus/machine-id': '0123456789abcdef0123456789abcdef\n',
  'etc/ssh/ssh_host_ed25519_key': 'key',
  'etc/ssh/ssh_host_ed25519_key.pub': 'pub',
  'etc/ssh/sshd_config': 'kept',
  'var/lib/systemd/random-seed': 'seed',
  'var/lib/systemd/credential.secret': 'secret',
  'var/lib/dhcp/dhclient.ens3.leases': 'lease',
  'var/lib/NetworkManager/internal-abc-eth0.lease': 'lease',
  'var/lib/systemd/network/ens3.lease': 'lease',
  'etc/systemd/network/10-cloud-init-ens3.network': '[Match]',
  'etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection': '[connection]',
  'etc/systemd/network/50-admin.network': 'kept',
  'var/lib/apt/lists/deb.example_dists_trixie_InRelease': 'list',
  'var/cache/apt/archives/openmpi-bin.deb': 'deb',
  'var/cache/apt/pkgcache.bin': 'bin',
  'var/cache/dnf/repo.solv': 'solv',
  'var/cache/yum/x': 'x',
  'var/log/syslog': 'lines',
  'var/log/syslog.1': 'old',
  'var/log/apt/history.log.gz': 'gz',
  'var/log/dpkg.log.old': 'old',
  'var/log/journal/abc/system.journal': 'journal',
  'root/.bash_history': 'history',
  'root/.lesshst': 'x',
  'root/.viminfo': 'x',
  'home/hpc/.bash_history': 'history',
  'home/hpc/.lesshst': 'x',
  'home/hpc/notes.txt': 'kept',
  'var/lib/guestforge/build.sh': 'build',
  'tmp/.hidden': 'x',
  'tmp/file': 'x',
  'var/tmp/file': 'x',
  'opt-vm/app/bin/run.sh': 'kept',
};

async function makeGuest(root: string): Promise<void> {
  for (const [path, content] of Object.entries(guest)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    if (content.startsWith('->')) await symlink(content.slice(2), join(root, path));
    else await writeFile(join(root, path), content);
  }
  await mkdir(join(root, 'usr'));
  for (const dir of ['bin', 'lib', 'lib64', 'sbin']) await symlink(`usr/${dir}`, join(root, dir));
}

/** lstat: a link the script should have removed counts, wherever it points. */
const exists = (path: string) => lstat(path).then(() => true, () => false);

/** Runs a script as the seal stage does, in the guest's root: here a chroot, never the host's own root. */
async function runInGuest(tmp: string, root: string, script: string) {
  await writeFile(join(tmp, 'sysprep.sh'), script);
  return execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c',
    'mount --bind -o ro /usr "$1/usr" && chroot "$1" sh < "$2"', 'sh', root, join(tmp, 'sysprep.sh')], { reject: false });
}

s('the script run in a made-up guest root cleans what each record says and nothing else', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'gf-sysprep-'));
  try {
    const root = join(tmp, 'root');
    await makeGuest(root);
    const r = await runInGuest(tmp, root, sysprepScript());
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stdout.trim(), sysprepDone);
    // Everything in the made-up guest but what no operation names (checked below) and the files that are emptied.
    const kept = ['var/lib/cloud/scripts/per-boot/keep.sh', 'etc/ssh/sshd_config', 'etc/systemd/network/50-admin.network', 'home/hpc/notes.txt', 'opt-vm/app/bin/run.sh'];
    const emptied = ['etc/machine-id', 'var/log/syslog'];
    const gone = Object.keys(guest).filter((path) => !kept.includes(path) && !emptied.includes(path));
    assert.ok(gone.length > 25, `${gone.length} paths to clean`);
    for (const path of gone) assert.not.ok(await exists(join(root, path)), `left: /${path}`);
    assert.is(await readFile(join(root, 'etc/machine-id'), 'utf8'), '', 'machine-id emptied, kept as a file');
    assert.is(await readFile(join(root, 'var/log/syslog'), 'utf8'), '', 'a log emptied, kept as a file');
    assert.equal(await readdir(join(root, 'var/lib/apt/lists')), ['partial']);
    for (const path of kept) {
      assert.is(await readFile(join(root, path), 'utf8'), 'kept', `/${path} is nobody's to clean`);
    }
    // The host's /usr was bound read-only inside the namespace only.
    assert.equal(await readdir(join(root, 'usr')), []);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

s('a failing operation stops the script before the done word (set -e), so the seal stage fails with its message', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'gf-sysprep-'));
  try {
    const root = join(tmp, 'root');
    await makeGuest(root);
    const r = await runInGuest(tmp, root, sysprepScript([{ id: 'broken', what: 'fails', why: 'test', script: 'mkdir /no/such/parent/here' }, ...sysprepOperations]));
    assert.is.not(r.exitCode, 0);
    assert.not.match(r.stdout, sysprepDone);
    assert.match(r.stderr, /no\/such\/parent/);
    assert.ok(await exists(join(root, 'etc/ssh/ssh_host_ed25519_key')), 'nothing after the failure ran');
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

s.run();
