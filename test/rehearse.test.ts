/**
 * guestforge rehearse for real under TCG: the default profile's image (built
 * from .test-cache/, where e2e.test.ts left its stages) booted as a vTorque
 * node boots it (host keys by ssh-keygen -A, see below), with the real,
 * fenced nfs-ganesha and SSH as the job
 * owner (the job also tries a forged NFS handle from inside the guest, shows Torque's environment and
 * exits 3, which fails the rehearsal on the job alone); SIGINT mid-rehearsal of three nodes leaving nothing; a bad cluster file located.
 * The failure paths of the in-guest checks (an image without the NFS client)
 * run without a kernel in rehearse-fake.test.ts.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { parse, parseDocument } from 'yaml';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { running as isRunning, waitUntil } from './helpers/wait.ts';
import { run } from '../src/exec/run.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const cache = process.env.GUESTFORGE_TEST_CACHE ?? join(root, '.test-cache');
const env = { XDG_CACHE_HOME: cache, CI: '1' };
const tmp = await mkdtemp(join(tmpdir(), 'gf-rehearse-'));

// Rehearsals keep their work folders, seeds and consoles in a cache of this file's own (the
// image comes from the shared stage cache): what is left running or lying around is this file's.
const own = join(tmp, 'xdg');
await mkdir(join(own, 'guestforge'), { recursive: true });
await copyFile(join(cache, 'guestforge', 'accel.json'), join(own, 'guestforge', 'accel.json')).catch(() => undefined);
const rehearseEnv = { XDG_CACHE_HOME: own, CI: '1' };
const guestforge = (args: string[], timeoutMs = 40 * 60_000) =>
  execa('node', [cli, ...args], { env: args[0] === 'rehearse' ? rehearseEnv : env, reject: false, all: true, timeout: timeoutMs });

/** qemu and ganesha processes of this file's rehearsals (their disks, seeds and configs are under tmp). */
async function leftovers(): Promise<string[]> {
  const r = await run(['pgrep', '-af', 'qemu-system|ganesha.nfsd'], { allowFailure: true });
  return r.stdout.split('\n').filter((l) => l.includes(tmp));
}

async function rehearseWork(): Promise<string[]> {
  return (await readdir(join(own, 'guestforge', 'work')).catch(() => [] as string[])).filter((n) => n.startsWith('rehearse-'));
}

interface Report {
  ok: boolean;
  checks: { id: string; status: string; detail: string }[];
  jobReadyMs?: number;
  cloudInitDoneMs?: number;
  clusterCost?: { packagesMs?: number; runcmdMs?: number };
  jobOutput?: string;
  job?: { id: string; exitCode?: number; stdout: string; stderr: string };
}

const r = timed(suite('rehearse'));

r('a bad cluster file: exit 2 naming file, line, column and field', async () => {
  const file = join(tmp, 'bad-cluster.yaml');
  await writeFile(file, 'name: bad\nvm:\n  cpu: "Penryn,+vmx"\n');
  const image = join(tmp, 'x.qcow2');
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', image, '64M']);
  const res = await guestforge(['rehearse', image, '--cluster', file], 60_000);
  assert.is(res.exitCode, 2, res.all);
  assert.match(res.all, /bad-cluster\.yaml:3:8 vm\.cpu: expected letters, digits/);
});

r('the default profile\'s image in a vTorque rehearsal booted with UEFI (vm.firmware: uefi): NFS home and workspace, SSH as the owner, the job with Torque\'s environment; a job that exits 3 fails it with its status and stderr', async () => {
  const out = join(tmp, 'out');
  const build = await guestforge(['build', join(root, 'profiles', 'debian-13-hpc.yaml'), '-o', out, '--no-smoke']);
  assert.is(build.exitCode, 0, build.all);
  const junit = join(tmp, 'rehearse.xml');
  // The shipped cluster, with a job of ours given as an admin gives one (--job): it plays a hostile guest (the NFS
  // client of test/fixtures, sent in the job line, asks the server as uid 0 for the root folder of the host's disk
  // with a forged handle), shows the environment Torque gives a job, says something on stderr and exits 3:
  // the rehearsal must fail on the job alone.
  // Host keys by `ssh-keygen -A`: vTorque's `dpkg-reconfigure openssh-server` runs the package's whole postinst
  // again (perl, ucf, three daemon-reloads: ~130-190 s of a TCG boot) and proves nothing of guestforge's
  // (its runcmd line is checked in multinode.test.ts; the bench's rehearsals run it and time it). The
  // boot-time apt run stays: it goes through the rehearsal's mirror forward, which only a real VM proves.
  const shipped = parseDocument(await readFile(join(root, 'clusters', 'vtorque.yaml'), 'utf8'));
  shipped.setIn(['seed', 'hostKeys'], 'ssh-keygen');
  // A site that boots its job VMs with UEFI (issue 36): OVMF on q35, a fresh vars file per VM; vTorque's Penryn CPU and
  // raw virtio seed as shipped. SeaBIOS on i440fx is rehearsed by multinode.test.ts and vrdma.test.ts.
  shipped.setIn(['vm', 'firmware'], 'uefi');
  shipped.setIn(['vm', 'machine'], 'q35');
  const clusterFile = join(tmp, 'vtorque.yaml');
  await writeFile(clusterFile, shipped.toString());
  const cluster = shipped.toJS() as { job: { command: string } };
  const probe = (await readFile(join(root, 'test', 'fixtures', 'nfs4probe.py'))).toString('base64');
  const hostFsid = (await run(['stat', '-f', '-c', '%i', '/'])).stdout.trim();
  const job = `${cluster.job.command} && echo ${probe} | base64 -d > /tmp/nfs4probe.py && python3 /tmp/nfs4probe.py 10.0.2.100:2049 escape home ${hostFsid}`
    + ' && env | grep ^PBS_ | sort && cat "$PBS_NODEFILE" && echo "the solver diverged at step 7" >&2 && exit 3';
  const res = await guestforge(['rehearse', join(out, 'debian-13-hpc.qcow2'), '--cluster', clusterFile, '--job', job, '--expect', 'workspace /workspace is writable', '--json', '--junit', junit, '--log-dir', join(tmp, 'logs')]);
  assert.is(res.exitCode, 1, res.all);
  const report = JSON.parse(res.stdout) as Report;
  const byId = new Map(report.checks.map((c) => [c.id, c]));
  for (const id of ['vm.job-ready', 'cloud-init.done', 'rehearse.runcmd', 'owner.ids', 'nfs.home', 'nfs.workspace', 'nfs.software', 'ssh.host-keys', 'units.failed', 'cloud-init.deprecations', 'cloud-init.packages', 'layout.workspace-writable', 'layout.opt-empty', 'layout.opt-vm', 'nfs.job-output']) {
    assert.is(byId.get(id)?.status, 'pass', `${id}: ${byId.get(id)?.detail}`);
  }
  // The job alone failed, with its status and the tail of its stderr.
  assert.equal(report.checks.filter((c) => c.status === 'fail').map((c) => c.id), ['job.run']);
  assert.match(byId.get('job.run')!.detail, /^\d{5}\.vtorque: exit 3 after \d+\.\d s\nstderr \(last lines\):\nthe solver diverged at step 7\n/);
  assert.is(report.job?.exitCode, 3);
  assert.match(res.stderr + (await readFile(join(tmp, 'logs', 'rehearse.log'), 'utf8')), /job \d{5}\.vtorque \(STDIN\) on the VM as jobuser/);
  // Torque's environment in the guest, and the streams as Torque names them, kept beside the logs.
  const o = await readFile(report.job!.stdout, 'utf8');
  for (const v of [`PBS_JOBID=${report.job!.id}`, 'PBS_JOBNAME=STDIN', 'PBS_NODEFILE=/home/jobuser/pbs_nodefile.', 'PBS_O_WORKDIR=/home/jobuser', 'PBS_NP=1', 'PBS_NUM_NODES=1']) assert.ok(o.includes(v), `${v} in\n${o}`);
  assert.match(report.job!.stdout, /\/logs\/STDIN\.o\d{5}$/);
  assert.is(await readFile(report.job!.stderr, 'utf8'), 'the solver diverged at step 7\n');
  // On the host's home export, owned by the owner's uid (read while the server ran).
  assert.match(byId.get('nfs.job-output')!.detail, /home\/STDIN\.o\d+ 2001:2001, home\/STDIN\.e\d+ 2001:2001, workspace\/job-\S+\.done 2001:2001/);
  assert.match(byId.get('rehearse.runcmd')!.detail, /instance-id iid-local01/);
  // The seed the VM got (kept beside the logs, redacted) made the host keys as this test's cluster file asked.
  const runcmd = (parse(await readFile(join(tmp, 'logs', 'rehearse-user-data.yaml'), 'utf8')) as { runcmd: unknown[] }).runcmd.map((c) => JSON.stringify(c));
  assert.ok(runcmd.includes('["ssh-keygen","-A"]'), runcmd.join('\n'));
  assert.not.ok(runcmd.some((c) => c.includes('dpkg-reconfigure')), runcmd.join('\n'));
  assert.match(byId.get('owner.ids')!.detail, /jobuser is 2001:2001/);
  // The cluster's boot-time packages: measured by cloud-init, reported (the README's advice rests on it).
  assert.match(byId.get('cloud-init.packages')!.detail, /boot-time package run took \d+(\.\d+)? s/);
  // ...and handed to the host as figures, with the cluster's runcmd lines before the checks: both inside cloud-init done.
  const cost = report.clusterCost ?? {};
  assert.ok(cost.packagesMs !== undefined && cost.runcmdMs !== undefined && cost.packagesMs + cost.runcmdMs < (report.cloudInitDoneMs ?? 0), JSON.stringify({ cost, done: report.cloudInitDoneMs }));
  assert.match(byId.get('nfs.workspace')!.detail, /nfs4 +10\.0\.2\.100:\/workspace/);
  assert.match(byId.get('layout.opt-empty')!.detail, /\/opt is a mount point/);
  assert.match(report.jobOutput ?? '', /workspace \/workspace is writable/);
  // From inside the guest: the export answered, the forged handle for the host's disk did not.
  assert.match(report.jobOutput ?? '', /"export": "OK", "forged": \{"status": "(STALE|BADHANDLE)"/);
  assert.ok((report.jobReadyMs ?? 0) > 0);
  const xml = await readFile(junit, 'utf8');
  assert.is((xml.match(/<testcase /g) ?? []).length, report.checks.length);
  assert.match(xml, /failures="1"/);
  const nodeConsole = await readFile(join(tmp, 'logs', 'rehearse-console.log'), 'latin1');
  assert.match(nodeConsole, /GUESTFORGE-RESULT:\S+:ok/);
  // Booted by OVMF's boot manager from the disk's removable path, on q35.
  assert.match(nodeConsole, /BdsDxe: starting Boot\d+ "UEFI Misc Device"/);
  assert.match(res.all, /rehearse: booting the VM \(q35, uefi, cpu Penryn, seed on virtio-disk/);
  // The boot unit by unit, as systemd drew it, beside the logs.
  assert.match(await readFile(join(tmp, 'logs', 'rehearse-boot.svg'), 'utf8'), /<svg[\s\S]*cloud-init[\s\S]*<\/svg>\s*$/);
  assert.equal(await leftovers(), []);
  assert.equal(await rehearseWork(), []);
});

r('SIGINT mid-rehearsal of three nodes: exit 130, no VM, no segment hub, no NFS server left, no work folder', async () => {
  const image = join(tmp, 'out', 'debian-13-hpc.qcow2');
  assert.ok(existsSync(image), 'the earlier test built the image');
  const child = execa('node', [cli, 'rehearse', image, '--nodes', '3'], { env: rehearseEnv, reject: false, all: true, timeout: 5 * 60_000 });
  let seen = '';
  child.all?.on('data', (chunk: Buffer) => (seen += chunk.toString()));
  await waitUntil(() => /booting vnode03/.test(seen), { alive: () => isRunning(child), ceilingMs: 4 * 60_000 });
  assert.match(seen, /booting vnode03/, 'all three VMs were started');
  await new Promise((res) => setTimeout(res, 3000));
  const running = await leftovers();
  // Three VMs and, from three nodes on, the segment's hub (a qemu with no machine).
  assert.is(running.filter((l) => l.includes('qemu-system') && !l.includes('-machine none')).length, 3, running.join('\n'));
  assert.is(running.filter((l) => l.includes('qemu-system') && l.includes('-machine none')).length, 1, running.join('\n'));
  assert.ok(running.some((l) => l.includes('ganesha')), 'ganesha runs before the signal');
  child.kill('SIGINT');
  const res = await child;
  assert.is(res.exitCode, 130, res.all);
  assert.equal(await leftovers(), []);
  assert.equal(await rehearseWork(), []);
});

r.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

r.run();
