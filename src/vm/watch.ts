/**
 * Watching a VM's boot on its serial console until the guest reports its result and powers
 * off, for qemu and libvirt alike. qemu's exit code says nothing about provisioning (it exits 0
 * on any guest power-off): only the nonce'd result line counts, and its absence is a failure.
 */
import { UserError } from '../errors.ts';
import { shellQuote } from '../exec/run.ts';
import type { Logger } from '../log.ts';
import type { BootLoaderMarks, CheckLine } from '../model/smoke.ts';
import type { VmSpec } from './qemu-args.ts';
import { stopKeptVm } from './qemu.ts';
import type { RunningVm, VmRunner, VmStarter } from './runner.ts';
import { bootLoaderMark, parseSerialLine, SerialTail } from './serial.ts';

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
  /** The boot plot's lines after the result (smoke; smoke/boot-plot.ts decodes them), at most plotMaxChunks. */
  plot: string[];
  /** GRUB's lines of the last boot before the result, to the watcher's poll. */
  bootLoader: BootLoaderMarks;
  totalMs: number;
  consoleTail: string[];
  serialLog: string;
  argv: string[];
  /** Still running, for the admin (keepOnFailure). */
  kept?: RunningVm;
}

const pollMs = 500;
/** Lines of at most 76 characters of base64 (64 as the guest writes them): 7.6 MB, more than bootPlotMaxBytes gzipped. */
const plotMaxChunks = 100_000;

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
  const bootLoader: BootOutcome['bootLoader'] = {};
  const keepTiming = (text: string) => {
    if (timing.length < 64 && text.length <= 512) timing.push(text);
  };
  const plot: string[] = [];
  // After the result only (it would not count before), once, bounded; a line after "end" or "none" is not the plot's.
  const keepPlot = (chunk: string) => {
    const last = plot.at(-1);
    if (result && last !== 'end' && last !== 'none' && plot.length < plotMaxChunks) plot.push(chunk);
  };
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
        // GRUB's marks of the last boot before the result (a RedHat image reboots once to relabel).
        const mark = result ? undefined : bootLoaderMark(line);
        if (mark === 'kernel') {
          bootLoader.kernelMs = lastOutput - started;
          delete bootLoader.initrdMs;
        } else if (mark === 'initrd') bootLoader.initrdMs ??= lastOutput - started;
        const event = parseSerialLine(line, options.nonce);
        if (!event) continue;
        if (event.kind === 'plot') keepPlot(event.chunk);
        // report.sh says so, with the nonce, once it set the one-time password of a build VM kept after a failure.
        if (event.kind === 'kept') opened = true;
        if (event.kind === 'check') checks.push(event.check);
        else if (event.kind === 'warn') warnings.push(event.message);
        else if (event.kind === 'timing') keepTiming(event.text);
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
  // What came after the last poll: the smoke VM's timing and plot lines follow its result, just before the power-off.
  for (const line of await tail.poll()) {
    options.onLine?.(line);
    const event = parseSerialLine(line, options.nonce);
    if (event?.kind === 'plot') keepPlot(event.chunk);
    else if (event?.kind === 'timing') keepTiming(event.text);
  }

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
    plot,
    bootLoader,
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

/** A failed boot as an error: what went wrong, the console's last lines, where the log is. */
export function bootError(outcome: BootOutcome, label: string): UserError {
  return new UserError(`${label} failed: ${outcome.detail}`, {
    hint: [
      `last console lines (full log: ${outcome.serialLog}):`,
      ...outcome.consoleTail.map((l) => `  | ${l}`),
    ].join('\n'),
  });
}
