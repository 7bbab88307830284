/**
 * Boots a VM under qemu and watches its serial console until the guest
 * reports its result and powers off. qemu's exit code says nothing about
 * provisioning (it exits 0 on any guest power-off): only the nonce'd result
 * line counts, and its absence is a failure.
 */
import { readFile, rm } from 'node:fs/promises';
import { UserError } from '../errors.ts';
import { release, shellQuote, start } from '../exec/run.ts';
import { pidAlive } from '../exec/lock.ts';
import type { Logger } from '../log.ts';
import { qemuArgs, type VmSpec } from './qemu-args.ts';
import { qmpCommand } from './qmp.ts';
import { freshConsoleLog, parseSerialLine, SerialTail } from './serial.ts';
import type { CheckLine } from '../model/smoke.ts';

export interface WatchOptions {
  /** What this VM is, for messages: "build VM", "smoke VM". */
  label: string;
  nonce: string;
  timeoutMs: number;
  /** Give up when the console has been silent this long. */
  stallMs: number;
  /** After the result line, how long the guest may take to power off by itself. */
  powerOffGraceMs?: number;
  log: Logger;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
  /** The seed prints GUESTFORGE-STARTED (startedBootcmd): a login prompt without it for this long means cloud-init never ran. */
  startedWithinMs?: number;
  /**
   * On a failure that is not an interruption, leave the VM running and
   * return it (`--on-error keep|ask`); the runner must support release().
   * An error result then ends the watch at once: the guest stays up.
   */
  keepOnFailure?: boolean;
}

export type BootFailure = 'timeout' | 'stall' | 'panic' | 'no-result' | 'error-result' | 'qemu-failed' | 'interrupted' | 'no-cloud-init';

export interface BootOutcome {
  ok: boolean;
  failure?: BootFailure;
  detail: string;
  checks: CheckLine[];
  warnings: string[];
  /** The guest's GUESTFORGE-TIMING lines, as it printed them (parseBootTiming reads them). */
  timing: string[];
  /** From start to the result line. */
  resultMs?: number;
  totalMs: number;
  consoleTail: string[];
  serialLog: string;
  argv: string[];
  /** Still running, for the admin (keepOnFailure). */
  kept?: RunningVm;
}

const pollMs = 500;

/**
 * A running VM, whatever runs it: qemu as our child, or a libvirt domain.
 * The watch loop below only needs these.
 */
export interface VmRunner {
  /** What was started, for the log and the outcome. */
  readonly argv: string[];
  /** Wait up to `ms`; returns early when the VM stops. */
  wait(ms: number): Promise<void>;
  stopped(): Promise<boolean>;
  /** Ask the guest to power off (ACPI). */
  powerdown(): Promise<void>;
  /** Stop it now; safe to call twice. */
  stop(): Promise<void>;
  /** Bring the serial log file up to date (a remote domain's log is copied back). */
  sync?(): Promise<void>;
  /** Why it stopped when it did not start or crashed, if it knows. */
  failure(): Promise<string | undefined>;
  /**
   * Remove everything it made (libvirt: the domain, the volumes), told
   * whether the boot succeeded (a remote build VM's disk comes back only then).
   */
  dispose?(ended: { ok: boolean }): Promise<void>;
  /**
   * Leave it running when guestforge exits (`--on-error keep`); only a VM
   * started with a console socket can be. Returns its pid.
   */
  release?(): number;
}

/** A VM left running for an admin to look into (`--on-error keep`). */
export interface RunningVm {
  pid: number;
  consoleSocket: string;
  qmpSocket: string;
  /** 127.0.0.1 port forwarded to the guest's SSH (with --debug-ssh-key). */
  sshPort?: number;
  /**
   * The guest set the one-time root password (it reported an error and found
   * the debug files on its seed). A VM that hung or timed out never got there.
   */
  loginOpened: boolean;
  /** Stop it now (the admin chose clean-up or retry instead). */
  stop(): Promise<void>;
}

export type VmStarter = (spec: VmSpec, label: string) => Promise<VmRunner>;

/** qemu-system-x86_64 as a child process, stopped through QMP or signals. */
export const startQemu: VmStarter = async (spec) => {
  const argv = qemuArgs(spec);
  await freshConsoleLog(spec.serialLog);
  await rm(spec.qmpSocket, { force: true });
  if (spec.consoleSocket) await rm(spec.consoleSocket, { force: true });
  // A VM that may be kept runs in its own process group with no pipe to us, so it can outlive guestforge.
  const stderrFile = spec.consoleSocket ? `${spec.serialLog}.qemu-stderr` : undefined;
  if (stderrFile) await rm(stderrFile, { force: true }); // a retry's qemu must not be blamed for the last one's words
  const child = start(argv, stderrFile ? { detached: true, stderrFile } : {});
  let exited = false;
  let result: { exitCode?: number; stderr?: unknown } | undefined;
  const exit = child.then((r) => {
    exited = true;
    result = r;
    return r;
  });
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    await exit;
  };
  return {
    argv,
    wait: async (ms) => {
      await Promise.race([exit, new Promise((r) => setTimeout(r, ms))]);
    },
    stopped: async () => exited,
    powerdown: async () => {
      await qmpCommand(spec.qmpSocket, 'system_powerdown').catch(() => undefined);
    },
    stop: async () => {
      if (exited) return;
      await qmpCommand(spec.qmpSocket, 'quit').catch(() => undefined);
      await Promise.race([exit, new Promise((r) => setTimeout(r, 5000))]);
      await stop();
    },
    ...(spec.consoleSocket ? {
      release: () => {
        release(child);
        return child.pid ?? 0;
      },
    } : {}),
    failure: async () => {
      await exit;
      const stderr = stderrFile ? (await readFile(stderrFile, 'utf8').catch(() => '')).trim() : typeof result?.stderr === 'string' ? result.stderr.trim() : '';
      return result?.exitCode !== 0 && stderr ? `qemu failed (exit ${result?.exitCode}): ${stderr.split('\n').slice(-3).join(' | ')}` : undefined;
    },
  };
};

export async function bootVm(spec: VmSpec, options: WatchOptions, starter: VmStarter): Promise<BootOutcome> {
  const started = Date.now();
  const vm = await starter(spec, options.label);
  options.log.detail(`${options.label}: ${shellQuote(vm.argv)}`);
  let outcome: BootOutcome | undefined;
  try {
    outcome = await watch(vm, spec, options, started);
    return outcome;
  } finally {
    // What dispose could not remove is an error of its own, unless the boot already failed with one (said, not lost).
    if (!outcome?.kept) {
      await vm.dispose?.({ ok: outcome?.ok ?? false }).catch((error: unknown) => {
        if (outcome) throw error;
        options.log.warn((error as Error).message);
      });
    }
  }
}

async function watch(vm: VmRunner, spec: VmSpec, options: WatchOptions, started: number): Promise<BootOutcome> {
  const tail = new SerialTail(spec.serialLog);
  const checks: CheckLine[] = [];
  const warnings: string[] = [];
  const timing: string[] = [];
  let lastOutput = Date.now();
  let result: { ok: boolean; detail: string; at: number } | undefined;
  let failure: BootFailure | undefined;
  let detail = '';
  let poweroffAsked = false;
  let seedRead = false;
  let loginAt: number | undefined;
  let opened = false;
  let completed = false;

  try {
    for (;;) {
      await vm.wait(pollMs);
      const exited = await vm.stopped();
      await vm.sync?.();
      for (const line of await tail.poll()) {
        lastOutput = Date.now();
        options.onLine?.(line);
        const event = parseSerialLine(line, options.nonce);
        if (!event) continue;
        // report.sh says so, with the nonce, once it set the one-time password of a build VM kept after a failure.
        if (event.kind === 'kept') opened = true;
        if (event.kind === 'check') checks.push(event.check);
        else if (event.kind === 'warn') warnings.push(event.message);
        else if (event.kind === 'timing' && timing.length < 64 && event.text.length <= 512) timing.push(event.text);
        else if (event.kind === 'result' && !result) result = { ...event, at: Date.now() };
        else if (event.kind === 'started') seedRead = true;
        else if (event.kind === 'login') loginAt ??= Date.now();
        else if (event.kind === 'panic' && !result) {
          failure = 'panic';
          detail = event.line;
        }
      }
      const now = Date.now();
      if (options.signal?.aborted) {
        failure = 'interrupted';
        detail = 'interrupted';
      }
      if (failure || exited) break;
      // Kept on failure: the guest does not power off after an error result (report.sh), and we do not wait.
      if (result && !result.ok && options.keepOnFailure) break;
      if (result) {
        const waited = now - result.at;
        const grace = options.powerOffGraceMs ?? 60_000;
        if (waited > grace && !poweroffAsked) {
          poweroffAsked = true;
          options.log.warn(`${options.label} did not power off ${grace / 1000}s after its result line; asking it to`);
          await vm.powerdown();
        } else if (waited > grace + 30_000) {
          break;
        }
        continue;
      }
      if (options.startedWithinMs !== undefined && loginAt !== undefined && !seedRead && now - loginAt > options.startedWithinMs) {
        failure = 'no-cloud-init';
        detail = `${options.label} reached its login prompt, but cloud-init never ran the seed's bootcmd: it found no NoCloud seed at boot ` +
          '(its generator looks before slow devices appear: the seed\'s disk or CD driver must be in the initramfs) or it is disabled (/etc/cloud/cloud-init.disabled, cloud-init=disabled on the kernel command line)';
      } else if (now - started > options.timeoutMs) {
        failure = 'timeout';
        detail = `${options.label} timed out after ${Math.round(options.timeoutMs / 1000)}s without a result line`;
      } else if (now - lastOutput > options.stallMs) {
        failure = 'stall';
        detail = `${options.label} timed out: no console output for ${Math.round(options.stallMs / 1000)}s`;
      }
    }
    completed = true;
  } finally {
    // An interruption, or anything thrown, always stops it; a failure the admin may want to see waits for the verdict below.
    if (!completed || !options.keepOnFailure || failure === 'interrupted' || options.signal?.aborted) await vm.stop();
  }
  const stillRunning = !(await vm.stopped());
  const keep = Boolean(options.keepOnFailure && vm.release && stillRunning && failure !== 'interrupted' && (failure || (result && !result.ok)));
  if (!keep) await vm.stop();
  await vm.sync?.().catch(() => undefined);
  await tail.poll();

  if (!failure) {
    const crashed = result ? undefined : await vm.failure();
    if (result) {
      if (!result.ok) {
        failure = 'error-result';
        detail = result.detail || 'the guest reported an error';
      }
    } else if (crashed) {
      failure = 'qemu-failed';
      detail = crashed;
    } else {
      failure = 'no-result';
      detail = `${options.label} stopped without reporting a result`;
    }
  }
  return {
    ok: !failure,
    ...(failure ? { failure } : {}),
    detail: failure ? detail : (result?.detail ?? ''),
    checks,
    warnings,
    timing,
    ...(result ? { resultMs: result.at - started } : {}),
    totalMs: Date.now() - started,
    consoleTail: tail.tail(40),
    serialLog: spec.serialLog,
    argv: vm.argv,
    ...(keep ? { kept: keptVm(vm, spec, opened) } : {}),
  };
}

function keptVm(vm: VmRunner, spec: VmSpec, loginOpened: boolean): RunningVm {
  const pid = vm.release!();
  return {
    pid,
    loginOpened,
    consoleSocket: spec.consoleSocket!,
    qmpSocket: spec.qmpSocket,
    ...(spec.hostForward?.guestPort === 22 ? { sshPort: spec.hostForward.hostPort } : {}),
    stop: () => stopKeptVm(pid, spec.qmpSocket),
  };
}

/** End a VM by its pid (it may not be our child): QMP quit, then SIGTERM, then SIGKILL. */
export async function stopKeptVm(pid: number, qmpSocket: string): Promise<void> {
  const gone = () => !pidAlive(pid);
  if (gone()) return;
  const asked = await qmpCommand(qmpSocket, 'quit').then(() => true, () => false);
  for (const [signal, waitMs] of [[undefined, asked ? 5000 : 0], ['SIGTERM', 5000], ['SIGKILL', 2000]] as const) {
    if (signal) {
      try {
        process.kill(pid, signal);
      } catch {
        return;
      }
    }
    for (let t = 0; t < waitMs && !gone(); t += 100) await new Promise((r) => setTimeout(r, 100));
    if (gone()) return;
  }
}

/** A failed boot as an error: what went wrong, the console's last lines, where the log is. */
export function bootError(outcome: BootOutcome, label: string): UserError {
  return new UserError(`${label} failed: ${outcome.detail}`, {
    hint: [
      `last console lines (full log: ${outcome.serialLog}):`,
      ...outcome.consoleTail.map((l) => `  | ${l}`),
    ].join('\n'),
  });
}
