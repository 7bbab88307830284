/**
 * The look inside a kept build (`build --on-error keep`, `--break`):
 * builds, console, shell, resume, discard.
 */
import { connect } from 'node:net';
import { ExitCode, UsageError, UserError } from '../errors.ts';
import { runInteractive, run as exec } from '../exec/run.ts';
import { discardKept, findKept, inUse, listKept, stopVm, vmRunning } from '../debug/kept.ts';
import { checkSigningKey } from '../publish/sign.ts';
import { Logger } from '../log.ts';
import { runBuild, plannedStages } from '../pipeline/pipeline.ts';
import { withSignals } from '../pipeline/signals.ts';
import { loadProfileOrThrow } from '../profile/index.ts';
import { age, textTable } from '../report/table.ts';
import { guestfsEnv, type Accel } from '../vm/accel.ts';
import { debugOptions, keptLines, withKeptHint } from './build.ts';
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
  const running = await vmRunning(kept);
  const carries = kept.resumeDisk?.path === kept.disk.path;
  process.stderr.write(`guestfish on ${kept.disk.path}, ${running ? 'read-only: its VM is running' : 'read-write'}${!running && carries ? ' (resume goes on from what you leave here)' : !running ? ` (the failed ${kept.stage}'s disk: resume starts ${kept.stage} again from its input)` : ''}; exit or Ctrl-D leaves\n`);
  return runInteractive(['guestfish', ...(running ? ['--ro'] : []), `--format=${kept.disk.format}`, '-a', kept.disk.path, '-i'], { env: guestfsEnv(kept.options.accel as Accel) });
}

/** Go on from the kept stage with the profile as it is now; what the earlier stages made must still match it. */
export async function resume(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('resume', args, {
    verbose: { type: 'boolean', short: 'v' },
    'no-smoke': { type: 'boolean' },
    'on-error': { type: 'string' },
    'debug-ssh-key': { type: 'string' },
    break: { type: 'string' },
    ...allowHostPathOption,
  });
  const kept = await findKept(positionals[0], 'resume');
  // The folders the kept build was allowed, and any given now.
  const loaded = await loadProfileOrThrow(kept.profileFiles[0]!, { allowHostPaths: [...(kept.options.allowHostPaths ?? []), ...loadOptionsOf(values).allowHostPaths] });
  // The kept build's --backend/--connect/--pool, over the profile's.
  Object.assign(loaded.profile.build, kept.options.build ?? {});
  // A resume that fails is kept again unless asked otherwise: the admin is in the middle of a look inside.
  const debug = await debugOptions({ ...values, 'on-error': values['on-error'] ?? (loaded.profile.build.backend === 'qemu' ? 'keep' : 'cleanup') }, loaded.profile.build.backend);
  if (loaded.profile.name !== kept.profileName) throw new UsageError(`resume: ${kept.profileFiles[0]} now builds "${loaded.profile.name}", not ${kept.profileName}`);
  const smoke = values['no-smoke'] ? false : kept.options.smoke;
  const planned = plannedStages(loaded, { smoke });
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
  if (kept.resumeDisk) {
    const check = await exec(['qemu-img', 'info', '-U', kept.resumeDisk.path], { allowFailure: true });
    if (check.exitCode !== 0) throw new UserError(`resume: the disk ${kept.id} goes on from is gone or broken: ${kept.resumeDisk.path}`, { hint: `guestforge discard ${kept.id}, then build again` });
  }
  if (kept.options.signKey) await checkSigningKey(kept.options.signKey);
  await stopVm(kept);
  const log = new Logger({ verbose: Boolean(values.verbose) });
  const { ctx, error, kept: again } = await withSignals((signal) => runBuild(loaded, {
    ...debug,
    outDir: kept.options.outDir,
    smoke,
    keepWork: false,
    noCache: true,
    ...(kept.options.signKey ? { signKey: kept.options.signKey } : {}),
    accel: kept.options.accel as Accel,
    resume: { kept },
  }, log, signal));
  if (again) {
    const lines = keptLines(again, Boolean(again.vm));
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

