/** guestforge rehearse <image>: boot it as a cluster node would, and run a job in it as its owner. */
import { ensureTrustedDir } from '../util/trusted-path.ts';
import { regexProblem } from '../util/bounded-regex.ts';
import { makeWorkDir } from '../util/workdir.ts';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { defaultClusterFile, loadClusterOrThrow } from '../cluster/load.ts';
import { ExitCode, UsageError } from '../errors.ts';
import { Logger } from '../log.ts';
import { withSignals } from '../pipeline/signals.ts';
import { loadProfileOrThrow } from '../loader/index.ts';
import { defaultLayout } from '../profile/schema.ts';
import { readHostSources } from '../host/apt-sources.ts';
import { writeJunit } from '../report/junit.ts';
import { formatRehearsal, rehearsalJunitCases } from '../rehearse/report.ts';
import { rehearseImage } from '../rehearse/run.ts';
import { hostMemoryProblem } from '../rehearse/nodes.ts';
import { parseSize } from '../profile/units.ts';
import { freemem, totalmem } from 'node:os';
import { nonce as makeNonce } from '../util/fs.ts';
import { cacheDir } from '../util/paths.ts';
import { resolveAccel } from '../vm/backend.ts';
import { allowHostPathOption, loadOptionsOf, parseCommandArgs } from './args.ts';
import { diskFormatOf } from './verify.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('rehearse', args, {
    'allow-backing': { type: 'boolean' },
    cluster: { type: 'string' },
    profile: { type: 'string' },
    junit: { type: 'string' },
    json: { type: 'boolean' },
    accel: { type: 'string', default: 'auto' },
    'log-dir': { type: 'string' },
    verbose: { type: 'boolean' },
    nodes: { type: 'string' },
    require: { type: 'string' },
    job: { type: 'string' },
    expect: { type: 'string' },
    ...allowHostPathOption,
  });
  const [image] = positionals;
  if (!image || positionals.length > 1) throw new UsageError('rehearse: name one image', { hint: 'guestforge rehearse out/debian-13-hpc.qcow2 [--cluster clusters/vtorque.yaml] [--nodes N] [--job \'CMD\' [--expect REGEX]] [--junit rehearse.xml]' });
  const accelWanted = values.accel;
  if (accelWanted !== 'auto' && accelWanted !== 'kvm' && accelWanted !== 'tcg') throw new UsageError(`rehearse: --accel must be auto, kvm or tcg, not "${accelWanted}"`);
  const nodes = values.nodes === undefined ? undefined : Number(values.nodes);
  if (nodes !== undefined && (!Number.isInteger(nodes) || nodes < 1 || nodes > 8)) throw new UsageError(`rehearse: --nodes must be a whole number from 1 to 8, not "${values.nodes}"`);
  if (values.require !== undefined && values.require !== 'vrdma') throw new UsageError(`rehearse: --require takes vrdma, not "${values.require}"`);
  const cluster = await loadClusterOrThrow(values.cluster ?? defaultClusterFile);
  // Your own job instead of the cluster file's: its expect, and no check of the shipped MPI example.
  if (values.job !== undefined) {
    if (!values.job.trim()) throw new UsageError('rehearse: --job needs a command', { hint: 'guestforge rehearse IMAGE --job \'mpirun --hostfile "$PBS_NODEFILE" my-app input\' [--expect \'REGEX\']' });
    cluster.job = { ...cluster.job, command: values.job };
    delete cluster.job.expect;
    delete cluster.nodes.mpiCommand;
  }
  if (values.expect !== undefined) {
    const problem = regexProblem(values.expect);
    if (problem) throw new UsageError(`rehearse: --expect is not a valid JavaScript regular expression: ${problem}`);
    cluster.job.expect = values.expect;
  }
  const count = nodes ?? cluster.nodes.count;
  if (values.require === 'vrdma' && count < 2) throw new UsageError('rehearse: --require vrdma checks RDMA between VMs: give --nodes 2 or more', { hint: 'one VM\'s vRDMA is proven by the smoke boot of a vrdma profile (its loopback check)' });
  const profile = values.profile ? (await loadProfileOrThrow(values.profile, loadOptionsOf(values))).profile : undefined;
  const layout = profile?.layout ?? defaultLayout;
  // What the guests' apt may reach: the mirrors images are built from (the host's apt sources, or the profile's own).
  const profileMirror = profile?.base.bootstrap?.mirror;
  const mirrors = [...new Set([...(await readHostSources()).map((s) => s.uri), ...(profileMirror && profileMirror !== 'auto' ? [profileMirror] : [])])];
  const format = await diskFormatOf(image, 'rehearse', { allowBacking: Boolean(values['allow-backing']) });
  const log = new Logger({ verbose: Boolean(values.verbose) });
  // More than the host has at all is refused; more than it has free now is said (qemu takes guest memory as it is used).
  const memoryProblem = hostMemoryProblem(count, parseSize(cluster.vm.memory), totalmem(), 'in all');
  if (memoryProblem) throw new UsageError(`rehearse: ${memoryProblem}`, { hint: 'give fewer --nodes or a smaller vm.memory in the cluster file' });
  const tight = hostMemoryProblem(count, parseSize(cluster.vm.memory), freemem());
  if (tight) log.warn(`rehearse: ${tight} now: the VMs may be slow or killed if they use it all`);
  const nonce = makeNonce(6);
  const logDir = await ensureTrustedDir(values['log-dir'] ?? join(cacheDir(), 'logs', `rehearse-${new Date().toISOString().replace(/[:.]/g, '-')}`), '--log-dir', 0o700);
  const workDir = await makeWorkDir(`rehearse-${nonce}`, `rehearse ${image}`);
  log.toFile(join(logDir, 'rehearse.log'));
  const report = await withSignals(async (signal) => {
    const step = log.step(`rehearse ${image} as ${count > 1 ? `${count} ${cluster.name} nodes` : `a ${cluster.name} node`}`);
    try {
      const r = await rehearseImage({ path: resolve(image), format }, {
        cluster, layout, accel: await resolveAccel(accelWanted, log), nonce, workDir, logDir, log, signal, step,
        nodes: count, requireVrdma: values.require === 'vrdma', mirrors,
      });
      if (r.ok) step.succeed(`job-ready after ${((r.jobReadyMs ?? 0) / 1000).toFixed(1)} s${count > 1 ? ` (all ${count} VMs)` : ''}`);
      else step.fail();
      return r;
    } catch (error) {
      step.fail(signal.aborted ? 'interrupted' : undefined);
      throw error;
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  });
  if (values.junit) await writeJunit(values.junit, `guestforge rehearse ${image}`, rehearsalJunitCases(report));
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else for (const line of formatRehearsal(report)) process.stdout.write(`${line}\n`);
  return report.ok ? ExitCode.ok : ExitCode.failure;
}
