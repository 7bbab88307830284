/**
 * Boots a VM under qemu and watches its serial console until the guest
 * reports its result and powers off. qemu's exit code says nothing about
 * provisioning (it exits 0 on any guest power-off): only the nonce'd result
 * line counts, and its absence is a failure.
 */
import { rm } from 'node:fs/promises';
import { UserError } from '../errors.ts';
import { start } from '../exec/run.ts';
import { shellQuote } from '../exec/run.ts';
import type { Logger } from '../log.ts';
import { qemuArgs, type VmSpec } from './qemu-args.ts';
import { qmpCommand } from './qmp.ts';
import { parseSerialLine, SerialTail, type CheckLine } from './serial.ts';

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
}

export type BootFailure = 'timeout' | 'stall' | 'panic' | 'no-result' | 'error-result' | 'qemu-failed' | 'interrupted';

export interface BootOutcome {
  ok: boolean;
  failure?: BootFailure;
  detail: string;
  checks: CheckLine[];
  warnings: string[];
  /** From start to the result line. */
  resultMs?: number;
  totalMs: number;
  consoleTail: string[];
  serialLog: string;
  argv: string[];
}

const pollMs = 500;

export async function bootQemu(spec: VmSpec, options: WatchOptions): Promise<BootOutcome> {
  const argv = qemuArgs(spec);
  await rm(spec.qmpSocket, { force: true });
  options.log.detail(`${options.label}: ${shellQuote(argv)}`);
  const started = Date.now();
  const child = start(argv);
  let exited = false;
  let qemuStderr = '';
  const exit = child.then((r) => {
    exited = true;
    qemuStderr = typeof r.stderr === 'string' ? r.stderr : '';
    return r;
  });
  const tail = new SerialTail(spec.serialLog);
  const checks: CheckLine[] = [];
  const warnings: string[] = [];
  let lastOutput = Date.now();
  let result: { ok: boolean; detail: string; at: number } | undefined;
  let failure: BootFailure | undefined;
  let detail = '';
  let poweroffAsked = false;

  const stopQemu = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    await exit;
  };

  try {
    for (;;) {
      await Promise.race([exit, new Promise((r) => setTimeout(r, pollMs))]);
      for (const line of await tail.poll()) {
        lastOutput = Date.now();
        options.onLine?.(line);
        const event = parseSerialLine(line, options.nonce);
        if (!event) continue;
        if (event.kind === 'check') checks.push(event.check);
        else if (event.kind === 'warn') warnings.push(event.message);
        else if (event.kind === 'result' && !result) result = { ...event, at: Date.now() };
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
      if (failure) {
        await stopQemu();
        break;
      }
      if (exited) break;
      if (result) {
        const waited = now - result.at;
        const grace = options.powerOffGraceMs ?? 60_000;
        if (waited > grace && !poweroffAsked) {
          poweroffAsked = true;
          options.log.warn(`${options.label} did not power off ${grace / 1000}s after its result line; asking it through QMP`);
          await qmpCommand(spec.qmpSocket, 'system_powerdown').catch(() => undefined);
        } else if (waited > grace + 30_000) {
          await qmpCommand(spec.qmpSocket, 'quit').catch(() => undefined);
          await Promise.race([exit, new Promise((r) => setTimeout(r, 5000))]);
          await stopQemu();
          break;
        }
        continue;
      }
      if (now - started > options.timeoutMs) {
        failure = 'timeout';
        detail = `${options.label} timed out after ${Math.round(options.timeoutMs / 1000)}s without a result line`;
      } else if (now - lastOutput > options.stallMs) {
        failure = 'stall';
        detail = `${options.label} timed out: no console output for ${Math.round(options.stallMs / 1000)}s`;
      }
    }
  } finally {
    await stopQemu();
    await tail.poll();
  }

  const r = await exit;
  if (!failure) {
    if (result) {
      if (!result.ok) {
        failure = 'error-result';
        detail = result.detail || 'the guest reported an error';
      }
    } else if (r.exitCode !== 0 && qemuStderr.trim()) {
      failure = 'qemu-failed';
      detail = `qemu failed (exit ${r.exitCode}): ${qemuStderr.trim().split('\n').slice(-3).join(' | ')}`;
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
    ...(result ? { resultMs: result.at - started } : {}),
    totalMs: Date.now() - started,
    consoleTail: tail.tail(40),
    serialLog: spec.serialLog,
    argv,
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
