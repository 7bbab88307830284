/**
 * Smoke boot of an OSv image: boot it on a throwaway overlay, read the
 * console, and check what an OSv app can show from outside: OSv booted, the
 * app's output matched `smoke.expect`, and the VM powered off by itself (or
 * kept running, for a server). An OSv VM that fails may hang instead of
 * stopping, so every boot has a deadline.
 */
import { testBounded } from '../../util/bounded-regex.ts';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckLine, SmokeReport } from '../../model/smoke.ts';
import type { DiskRef } from '../../model/disk.ts';
import { createOverlay } from '../../vm/overlay.ts';
import { startQemu } from '../../vm/qemu.ts';
import { cleanLine, SerialTail } from '../../vm/serial.ts';
import { shellQuote } from '../../exec/run.ts';
import { osvFailureLines } from './compose.ts';
import type { OwnSmokeOptions } from '../../stages/driver.ts';

/** Console lines longer than this are cut before they are kept or matched. */
export const maxLineChars = 1000;


/** What the console showed, judged: pure, so the verdicts are tested without a VM. */
export function judgeOsvConsole(lines: string[], o: { expect?: string; powerOff: boolean; stoppedBySelf: boolean; timedOut: boolean; seconds: number }): CheckLine[] {
  const clean = lines.map(cleanLine);
  const banner = clean.find((l) => /^OSv v\S+/.test(l.trim()));
  const checks: CheckLine[] = [{ id: 'osv.boot', status: banner ? 'pass' : 'fail', detail: banner ? `${banner.trim()}${clean.find((l) => l.startsWith('Cmdline: ')) ? `; ${clean.find((l) => l.startsWith('Cmdline: '))}` : ''}` : 'no OSv banner on the console' }];
  const failure = clean.find((l) => osvFailureLines.some((f) => l.includes(f)));
  if (o.expect !== undefined) {
    // The guest wrote these lines: the pattern runs with a time bound on each.
    let backtracks = false;
    const hit = clean.find((l) => {
      const r = testBounded(o.expect!, l);
      if (r === 'timeout') backtracks = true;
      return r === true;
    });
    checks.push({ id: 'osv.output', status: hit ? 'pass' : 'fail', detail: hit ? `matched /${o.expect}/: ${hit.trim()}` : backtracks ? `/${o.expect}/ did not finish in 1 s on a console line: it backtracks without end; write it without nested quantifiers` : `no console line matched /${o.expect}/${failure ? `; OSv said: ${failure.trim()}` : ''}` });
  } else if (failure) {
    checks.push({ id: 'osv.output', status: 'fail', detail: failure.trim() });
  }
  if (o.powerOff) {
    checks.push({ id: 'osv.power-off', status: o.stoppedBySelf ? 'pass' : 'fail', detail: o.stoppedBySelf ? `powered off by itself after ${o.seconds.toFixed(1)} s` : `still running after ${o.seconds.toFixed(0)} s (smoke.powerOff: true)` });
  } else {
    checks.push({ id: 'osv.stays-up', status: !o.stoppedBySelf ? 'pass' : 'fail', detail: !o.stoppedBySelf ? `still running after ${o.seconds.toFixed(1)} s, as smoke.powerOff: false says` : `stopped by itself after ${o.seconds.toFixed(1)} s (smoke.powerOff: false)` });
  }
  return checks;
}

export async function smokeOsv(image: DiskRef, o: OwnSmokeOptions): Promise<SmokeReport> {
  await mkdir(o.workDir, { recursive: true });
  await mkdir(o.logDir, { recursive: true, mode: 0o700 });
  const overlay = await createOverlay(image, join(o.workDir, 'osv-smoke.qcow2'));
  const serialLog = join(o.logDir, 'smoke-console.log');
  const started = Date.now();
  const vm = await startQemu({
    disk: overlay.path, diskFormat: 'qcow2', memoryMiB: 512, cpus: 1, accel: o.accel, serialLog,
    qmpSocket: join(o.workDir, 'osv-smoke-qmp.sock'), unsafeCache: true, isolated: true,
  }, 'OSv smoke VM');
  o.log.detail(`OSv smoke VM: ${shellQuote(vm.argv)}`);
  const tail = new SerialTail(serialLog);
  const lines: string[] = [];
  let stoppedBySelf = false;
  let timedOut = false;
  let matched = false;
  let firstMatch: string | undefined;
  let failure: string | undefined;
  try {
    for (;;) {
      await vm.wait(300);
      for (const line of await tail.poll()) {
        // The app writes these lines: kept and matched only up to a length, each once.
        const kept = line.slice(0, maxLineChars);
        lines.push(kept);
        o.log.detail(`console: ${kept}`);
        if (o.expect !== undefined && !matched && testBounded(o.expect, cleanLine(kept)) === true) {
          matched = true;
          firstMatch = kept;
        }
      }
      // A chatty app: keep the first lines (banner, command line) and the latest ones.
      if (lines.length > 5000) lines.splice(200, lines.length - 4000);
      if (await vm.stopped()) {
        failure = await vm.failure();
        stoppedBySelf = failure === undefined;
        break;
      }
      if (o.signal.aborted) throw o.signal.reason;
      // A server is judged once its output is there (and has had a moment to crash).
      if (!o.powerOff && matched && Date.now() - started > 3000) break;
      if (Date.now() - started > o.timeoutMs) {
        timedOut = true;
        break;
      }
      o.step?.update(`OSv smoke VM (${Math.round((Date.now() - started) / 1000)} s)`);
    }
  } finally {
    await vm.stop();
    for (const line of await tail.poll()) lines.push(line.slice(0, maxLineChars));
    await rm(overlay.path, { force: true });
  }
  if (failure) {
    return { ok: false, detail: `${failure}\nconsole: ${serialLog}`, checks: [{ id: 'osv.boot', status: 'fail', detail: failure }], warnings: [], serialLog };
  }
  const seconds = (Date.now() - started) / 1000;
  const checks = judgeOsvConsole(firstMatch !== undefined && !lines.includes(firstMatch) ? [...lines, firstMatch] : lines, { ...(o.expect !== undefined ? { expect: o.expect } : {}), powerOff: o.powerOff, stoppedBySelf, timedOut, seconds });
  const failed = checks.filter((c) => c.status === 'fail');
  return {
    ok: failed.length === 0,
    detail: failed.length ? `${failed.map((c) => `${c.id}: ${c.detail}`).join('\n')}\nlast console lines (${serialLog}):\n${tail.tail(10).map((l) => `  | ${l}`).join('\n')}` : 'all checks passed',
    checks,
    warnings: [],
    bootMs: seconds * 1000,
    serialLog,
  };
}
