/**
 * Smoke test: boot an image the way the cluster does (a NoCloud seed with a
 * fresh instance-id), let user-data check from inside, read the verdicts
 * from the serial console. The image itself is never written: the VM runs
 * on a throwaway overlay.
 */
import { mkdir, rm } from 'node:fs/promises';
import { writeFileAtomic } from '../util/fs.ts';
import { join } from 'node:path';
import { metaData, smokeUserData, type SmokeTarget } from '../cloudinit/userdata.ts';
import { buildSeedIso } from '../cloudinit/seed.ts';
import { renderCloudConfig } from '../cloudinit/yaml.ts';
import type { Logger, Step } from '../log.ts';
import type { JunitCase } from '../report/junit.ts';
import type { SmokeReport } from '../model/smoke.ts';
import type { DiskRef } from '../model/disk.ts';
import type { Accel } from '../vm/accel.ts';
import { parseBootTiming } from './boot-timing.ts';
import { plotFromConsole } from './boot-plot.ts';
import { createOverlay } from '../vm/overlay.ts';
import { startQemu } from '../vm/qemu.ts';
import type { VmStarter } from '../vm/runner.ts';
import { bootVm } from '../vm/watch.ts';

export interface SmokeOptions {
  name: string;
  target: SmokeTarget;
  accel: Accel;
  nonce: string;
  workDir: string;
  logDir: string;
  timeoutMs: number;
  stallMs: number;
  memoryMiB: number;
  cpus: number;
  log: Logger;
  signal: AbortSignal;
  step?: Step;
  /** What starts the VM (default: qemu). */
  starter?: VmStarter;
}

export async function smokeImage(image: DiskRef, options: SmokeOptions): Promise<SmokeReport> {
  await mkdir(options.workDir, { recursive: true });
  await mkdir(options.logDir, { recursive: true, mode: 0o700 });
  const overlay = await createOverlay(image, join(options.workDir, 'smoke.qcow2'));
  const iso = join(options.workDir, 'smoke-seed.iso');
  try {
    const userData = renderCloudConfig(await smokeUserData(options.target, options.nonce));
    await buildSeedIso(
      join(options.workDir, 'smoke-seed'),
      { userData, metaData: metaData({ name: options.name }, `smoke-${options.nonce}`) },
      iso,
    );
    const serialLog = join(options.logDir, 'smoke-console.log');
    // This boot's plot or none: never an older one beside a new console log.
    const plotFile = join(options.logDir, 'smoke-boot.svg');
    await rm(plotFile, { force: true });
    options.step?.update('booting');
    const outcome = await bootVm(
      {
        disk: overlay.path,
        diskFormat: 'qcow2',
        seedIso: iso,
        memoryMiB: options.memoryMiB,
        cpus: options.cpus,
        accel: options.accel,
        serialLog,
        qmpSocket: join(options.workDir, 'smoke-qmp.sock'),
        unsafeCache: true,
        // A RedHat image with /.autorelabel reboots once before cloud-init runs.
        allowReboot: true,
        // The checks need no network: the image under test reaches neither the host nor beyond.
        isolated: true,
      },
      {
        label: 'smoke VM',
        // After its result the guest times its boot and sends the plot; its plot service powers it off within 90 s.
        powerOffGraceMs: 150_000,
        // The seed's bootcmd says so on the console; a login prompt without it for a minute: cloud-init never ran.
        startedWithinMs: 60_000,
        nonce: options.nonce,
        timeoutMs: options.timeoutMs,
        stallMs: options.stallMs,
        log: options.log,
        signal: options.signal,
        onLine: (line) => {
          // The plot's base64 lines are in the console log; build.log gets the words only.
          if (!line.includes('GUESTFORGE-PLOT:')) options.log.detail(`console: ${line}`);
          if (/\blogin:\s*$/.test(line)) options.step?.update('login prompt');
          else if (/Cloud-init v\. \S+ finished/.test(line)) options.step?.update('cloud-init finished');
        },
      },
      options.starter ?? startQemu,
    );
    // The boot's plot, sent after the result: beside the console log when it is what systemd draws.
    // A diagnostic: a plot that cannot be kept is a warning, never the smoke's verdict.
    let bootPlot: string | undefined;
    if (outcome.resultMs !== undefined) {
      const plot = plotFromConsole(outcome.plot);
      const problem = 'svg' in plot
        ? await writeFileAtomic(plotFile, plot.svg, 0o600).then(() => undefined, (error: unknown) => (error as Error).message)
        : plot.problem;
      if (problem) options.log.warn(`smoke: the boot plot (systemd-analyze plot) not kept: ${problem}`);
      else bootPlot = plotFile;
    }
    const detail = outcome.ok
      ? 'all checks passed'
      : outcome.failure === 'error-result' && outcome.checks.length > 0
        ? outcome.detail
        : `${outcome.detail}\nlast console lines (${serialLog}):\n${outcome.consoleTail.map((l) => `  | ${l}`).join('\n')}`;
    return {
      ok: outcome.ok && outcome.checks.length > 0 && outcome.checks.every((c) => c.status !== 'fail'),
      detail,
      checks: outcome.checks,
      warnings: outcome.warnings,
      ...(outcome.resultMs !== undefined ? { bootMs: outcome.resultMs } : {}),
      ...(outcome.timing.length > 0 ? { boot: parseBootTiming(outcome.timing, outcome.resultMs, outcome.bootLoader) } : {}),
      serialLog,
      ...(bootPlot ? { bootPlot } : {}),
    };
  } finally {
    await rm(overlay.path, { force: true });
    await rm(iso, { force: true });
    await rm(join(options.workDir, 'smoke-seed'), { recursive: true, force: true });
  }
}

export function smokeJunitCases(report: SmokeReport): JunitCase[] {
  const cases: JunitCase[] = report.checks.map((c) => ({
    name: c.id,
    className: 'guestforge.smoke',
    status: c.status === 'fail' ? 'fail' : 'pass',
    message: c.detail,
  }));
  cases.unshift({
    name: 'boot',
    className: 'guestforge.smoke',
    status: report.bootMs !== undefined ? 'pass' : 'fail',
    message: report.bootMs !== undefined ? `result line after ${(report.bootMs / 1000).toFixed(1)}s` : report.detail,
    ...(report.bootMs !== undefined ? { seconds: report.bootMs / 1000 } : {}),
  });
  return cases;
}

export function formatSmoke(report: SmokeReport): string[] {
  const lines = report.checks.map((c) => `${c.status.toUpperCase()}  ${c.id}  ${c.detail}`);
  lines.push(report.ok
    ? `smoke: ${report.checks.length} checks passed, result after ${((report.bootMs ?? 0) / 1000).toFixed(1)}s`
    : `smoke failed: ${report.detail}`);
  return lines;
}
