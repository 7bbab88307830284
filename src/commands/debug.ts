/**
 * The look inside a kept build (`build --on-error keep`, `--break`):
 * builds, console, shell, resume, discard.
 */
import { connect } from 'node:net';
import { ExitCode, UsageError, UserError } from '../errors.ts';
import { runInteractive } from '../exec/run.ts';
import { discardKept, findKept, inUse, listKept, stopVm, vmRunning } from '../debug/kept.ts';
import { checkedKeptDisk } from '../debug/kept-check.ts';
import { checkSigningKey } from '../publish/sign.ts';
import { Logger } from '../log.ts';
import { runBuild, plannedStages } from '../pipeline/pipeline.ts';
import { withSignals } from '../pipeline/signals.ts';
import { loadProfileOrThrow } from '../loader/index.ts';
import { age, textTable } from '../report/table.ts';
import { untrustedFileProblem } from '../util/trusted-path.ts';
import { guestfsEnv } from '../vm/accel.ts';
import { isRemote } from '../vm/libvirt.ts';
import { accelFlag, backendFlag, debugOptions, keptLines, withKeptHint, type RunFlags } from './build-flags.ts';
import { allowHostPathOption, loadOptionsOf, parseCommandArgs } from './args.ts';
import { driverFor } from '../os/index.ts';

const out = (s: string) => process.stdout.write(`${s}\n`);

export async function builds(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('builds', args, { json: { type: 'boolean' } });
  const all = await listKept();
  const rows = await Promise.all(all.map(async (k) => ({ kept: k, running: await vmRunning(k), busy: await inUse(k) })));
  if (values.json) {
    out(JSON.stringify(rows.map(({ kept, running }) => ({
      id: kept.id, profile: kept.profileName, reason: kept.reason, stage: kept.stage, since: kept.since, vmRunning: running,
      ...(kept.vm?.sshPort && running ? { sshPort: kept.vm.sshPort } : {}), ...(kept.disk ? { disk: kept.disk.path } : {}), workDir: kept.workDir, ...(kept.error ? { error: kept.error } : {}),
    })), null, 2));
    return ExitCode.ok;
  }
  if (all.length === 0) {
    out('no build is kept (build --on-error keep, or --break, keeps one)');
    return ExitCode.ok;
  }
  const table = rows.map(({ kept, running, busy }) => [
    kept.id, kept.profileName, `${kept.reason === 'break' ? 'before' : 'failed in'} ${kept.stage}`, age(kept.since),
    busy ? 'being resumed' : running ? `VM running (pid ${kept.vm!.pid})${kept.vm!.sshPort && kept.password ? `, ssh 127.0.0.1:${kept.vm!.sshPort}` : ''}` : kept.disk ? 'disk' : 'work folder',
  ]);
  for (const line of textTable(['ID', 'PROFILE', 'STOPPED', 'SINCE', 'REACH'], table)) out(line);
  out('guestforge console|shell|resume|discard ID');
  return ExitCode.ok;
}

/** The kept build VM's serial console, both ways; Ctrl-] (or the end of input) detaches. */
export async function consoleCommand(args: string[]): Promise<number> {
  const { positionals } = parseCommandArgs('console', args, {});
  const kept = await findKept(positionals[0], 'console');
  if (!kept.vm || !(await vmRunning(kept))) {
    throw new UserError(`console: ${kept.id} has no running VM (${kept.reason === 'break' ? 'it stopped between stages' : `${kept.stage} failed outside a VM, or the VM stopped`})`, {
      hint: kept.disk ? `its disk: guestforge shell ${kept.id}` : `guestforge resume ${kept.id} or guestforge discard ${kept.id}`,
    });
  }
  const socket = connect(kept.vm.consoleSocket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve();
    });
    socket.once('error', (e) => reject(new UserError(`console: cannot reach ${kept.vm!.consoleSocket}: ${e.message}`, { hint: 'another console may be attached (qemu takes one at a time)' })));
  });
  process.stderr.write(`connected to the console of ${kept.id}'s build VM: ${kept.password ? `log in as root with the one-time password ${kept.password}` : 'it has no login (the guest never reached its report)'}; Ctrl-] detaches\n`);
  const stdin = process.stdin;
  const raw = stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  // A fresh login prompt: getty prints it again on an empty line.
  socket.write('\r');
  socket.on('data', (chunk) => process.stdout.write(chunk));
  return new Promise((resolve) => {
    let ended = false;
    const end = (code: number, message: string) => {
      if (ended) return;
      ended = true;
      if (raw) stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onInput);
      socket.destroy();
      process.stderr.write(`\n${message}\n`);
      resolve(code);
    };
    const onInput = (chunk: Buffer) => {
      const at = chunk.indexOf(0x1d);
      if (at < 0) {
        socket.write(chunk);
        return;
      }
      if (at > 0) socket.write(chunk.subarray(0, at));
      end(ExitCode.ok, `detached; the VM still runs (guestforge discard ${kept.id} ends it)`);
    };
    stdin.on('data', onInput);
    stdin.on('end', () => end(ExitCode.ok, 'end of input: detached'));
    socket.on('close', () => end(ExitCode.failure, 'the console closed: the VM stopped'));
    socket.on('error', () => undefined);
  });
}

/** guestfish on the kept disk: read-write between stages, read-only while the VM runs. */
export async function shell(args: string[]): Promise<number> {
  const { positionals } = parseCommandArgs('shell', args, {});
  const kept = await findKept(positionals[0], 'shell');
  if (!kept.disk) throw new UserError(`shell: ${kept.id} has no disk yet: it stopped in its first stage (${kept.stage})`, { hint: `guestforge resume ${kept.id} or guestforge discard ${kept.id}` });
  await checkedKeptDisk(kept, kept.disk, 'shell');
  const running = await vmRunning(kept);
  const carries = kept.resumeDisk?.path === kept.disk.path;
  process.stderr.write(`guestfish on ${kept.disk.path}, ${running ? 'read-only: its VM is running' : 'read-write'}${!running && carries ? ' (resume goes on from what you leave here)' : !running ? ` (the failed ${kept.stage}'s disk: resume starts ${kept.stage} again from its input)` : ''}; exit or Ctrl-D leaves\n`);
  return runInteractive(['guestfish', ...(running ? ['--ro'] : []), `--format=${kept.disk.format}`, '-a', kept.disk.path, '-i'], { env: guestfsEnv(kept.options.accel) });
}

/**
 * Go on from the kept stage with the profile as it is now; what the earlier stages made must still match it.
 * Where the image goes, how it is signed, smoke, the backend and the host folders a profile may name beyond its
 * own (--allow-host-path) come from this command line, as build's do: kept.json may have been written by someone
 * else, so nothing it says chooses a folder, a key or a host.
 */
export async function resume(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('resume', args, {
    output: { type: 'string', short: 'o', default: 'out' },
    'no-smoke': { type: 'boolean' },
    'sign-key': { type: 'string' },
    accel: { type: 'string' },
    backend: { type: 'string' },
    connect: { type: 'string' },
    pool: { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
    'on-error': { type: 'string' },
    'debug-ssh-key': { type: 'string' },
    break: { type: 'string' },
    ...allowHostPathOption,
  });
  const flags: RunFlags = {
    outDir: values.output,
    smoke: !values['no-smoke'],
    signKey: values['sign-key'],
    accel: accelFlag(values.accel, 'resume'),
    backend: backendFlag(values.backend, 'resume'),
    connect: values.connect,
    pool: values.pool,
    allowHostPaths: loadOptionsOf(values).allowHostPaths,
  };
  isRemote(flags.connect); // a malformed URI is a usage error now
  const kept = await findKept(positionals[0], 'resume');
  // The record names the profile: only one that we (or root) own and no one else can change is loaded.
  const untrusted = await untrustedFileProblem(kept.profileFiles[0]!);
  if (untrusted) throw new UserError(`resume: the profile of the kept build ${kept.id} is not one to trust: ${untrusted}`, { hint: `build again from the profile (guestforge discard ${kept.id} removes the kept one)` });
  // Host folders beyond the profile's own only as this command line allows them (--allow-host-path), like -o: not from the record.
  const loaded = await loadProfileOrThrow(kept.profileFiles[0]!, { allowHostPaths: flags.allowHostPaths });
  if (flags.backend || flags.connect) loaded.profile.build.backend = flags.backend ?? 'libvirt';
  if (flags.connect) loaded.profile.build.connect = flags.connect;
  if (flags.pool) loaded.profile.build.pool = flags.pool;
  // A resume that fails is kept again unless asked otherwise: the admin is in the middle of a look inside.
  const debug = await debugOptions({ ...values, 'on-error': values['on-error'] ?? (loaded.profile.build.backend === 'qemu' ? 'keep' : 'cleanup') }, loaded.profile.build.backend);
  if (loaded.profile.name !== kept.profileName) throw new UsageError(`resume: ${kept.profileFiles[0]} now builds "${loaded.profile.name}", not ${kept.profileName}`);
  const planned = plannedStages(loaded, { smoke: flags.smoke });
  const plan = planned.map((s) => s.name);
  const done = kept.plan.slice(0, kept.resumeIndex);
  if (plan.slice(0, done.length).join() !== done.join()) throw new UsageError(`resume: the build now runs ${plan.join(', ')}; the kept one had run ${done.join(', ')}`, { hint: 'build again' });
  const changed: string[] = [];
  for (const stage of planned.slice(0, kept.resumeIndex)) {
    const now = (await stage.cache?.inputs({ profile: loaded.profile, driver: driverFor(loaded.profile.os.family) })) ?? null;
    const then = kept.inputs[stage.name] ?? null;
    if (JSON.stringify(now) !== JSON.stringify(then)) {
      const parts = Object.keys({ ...now, ...then }).filter((k) => now?.[k] !== then?.[k]);
      changed.push(`${stage.name} (${parts.join(', ')})`);
    }
  }
  if (changed.length > 0) {
    throw new UsageError(`resume: the profile changed what the stages before ${kept.plan[kept.resumeIndex]} made: ${changed.join('; ')}`, {
      hint: `their disks in ${kept.id} no longer match it; build again (guestforge discard ${kept.id} removes the kept one)`,
    });
  }
  // Its backing chain may reach the build's folder, the stage cache, the downloads and this profile's base image only.
  if (kept.resumeDisk) await checkedKeptDisk(kept, kept.resumeDisk, 'resume', loaded.profile.base.image?.path ? [loaded.profile.base.image.path] : []);
  if (flags.signKey) await checkSigningKey(flags.signKey);
  await stopVm(kept);
  const log = new Logger({ verbose: Boolean(values.verbose) });
  const { ctx, error, kept: again } = await withSignals((signal) => runBuild(loaded, {
    ...debug,
    outDir: flags.outDir,
    smoke: flags.smoke,
    keepWork: false,
    noCache: true,
    ...(flags.signKey ? { signKey: flags.signKey } : {}),
    ...(flags.accel ? { accel: flags.accel } : {}),
    resume: { kept },
  }, log, signal));
  if (again) {
    const lines = keptLines(again, Boolean(again.vm), { ...flags, outDir: ctx.options.outDir, allowHostPaths: loaded.allowHostPaths });
    if (error) throw withKeptHint(error, lines);
    out(lines.join('\n'));
    return ExitCode.ok;
  }
  if (error) throw error;
  for (const o of ctx.outputs) out(`${o.path}  sha256 ${o.sha256.slice(0, 16)}…`);
  out(`resumed ${kept.id} at ${kept.plan[kept.resumeIndex]}: stages ${ctx.timings.map((t) => `${t.stage} ${(t.ms / 1000).toFixed(0)}s`).join(' · ')}`);
  return ExitCode.ok;
}

export async function discard(args: string[]): Promise<number> {
  const { positionals } = parseCommandArgs('discard', args, {});
  const kept = await findKept(positionals[0], 'discard');
  const running = await vmRunning(kept);
  await discardKept(kept);
  out(`discarded ${kept.id}${running ? ' (its VM stopped)' : ''}: ${kept.workDir} removed`);
  return ExitCode.ok;
}

