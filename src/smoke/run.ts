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
import { imageInfo } from '../vm/image.ts';
import { machineFor, prepareFirmware } from '../vm/firmware.ts';
import { partitionNumber, type BootFirmware, type DiskLayout } from '../model/disk.ts';
import type { Profile } from '../profile/schema.ts';
import { bootFirmwares, bootFirmwareTitle, firmwareOf } from '../policy/firmware.ts';
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
  /** The firmware to boot under (default SeaBIOS); the guest checks it booted through it. */
  firmware?: BootFirmware;
  /** Grow the disk by this many bytes before the boot, as a cluster enlarges the copy it boots (target.grow says what the guest checks). */
  growBytes?: number;
}

/** Pure: the file names of one boot's logs: SeaBIOS's keep the names smoke has always used, the others carry the firmware's. */
export function smokeLogNames(firmware: BootFirmware | undefined): { console: string; plot: string } {
  const suffix = firmware && firmware !== 'bios' ? `-${firmware}` : '';
  return { console: `smoke-console${suffix}.log`, plot: `smoke-boot${suffix}.svg` };
}

export async function smokeImage(image: DiskRef, options: SmokeOptions): Promise<SmokeReport> {
  await mkdir(options.workDir, { recursive: true });
  await mkdir(options.logDir, { recursive: true, mode: 0o700 });
  const grownTo = options.growBytes ? (await imageInfo(image.path)).virtualSize + options.growBytes : undefined;
  const overlay = await createOverlay(image, join(options.workDir, 'smoke.qcow2'), grownTo);
  const iso = join(options.workDir, 'smoke-seed.iso');
  const vars = join(options.workDir, 'smoke-ovmf-vars.fd');
  try {
    const uefi = await prepareFirmware(options.firmware ?? 'bios', vars);
    const names = smokeLogNames(options.firmware);
    // The guest checks the disk's size against what this boot made it.
    const target = grownTo !== undefined && options.target.grow ? { ...options.target, grow: { ...options.target.grow, diskBytes: grownTo } } : options.target;
    const userData = renderCloudConfig(await smokeUserData(target, options.nonce));
    await buildSeedIso(
      join(options.workDir, 'smoke-seed'),
      { userData, metaData: metaData({ name: options.name }, `smoke-${options.nonce}`) },
      iso,
    );
    const serialLog = join(options.logDir, names.console);
    // This boot's plot or none: never an older one beside a new console log.
    const plotFile = join(options.logDir, names.plot);
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
        ...(uefi ? { uefi, machine: machineFor(options.firmware!) } : {}),
      },
      {
        label: options.firmware && options.firmware !== 'bios' ? `smoke VM (${options.firmware})` : 'smoke VM',
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
    // The checks this boot must report: a check script cut short (or changed by the image) does not pass them by silence.
    const expected = [
      ...(options.firmware ? ['firmware.booted'] : []),
      ...(options.firmware === 'uefi-secure' ? ['firmware.secure-boot'] : []),
      ...(target.grow ? ['disk.grown'] : []),
    ];
    const missing = outcome.ok ? expected.filter((id) => !outcome.checks.some((c) => c.id === id)) : [];
    const detail = missing.length
      ? `the guest reported no ${missing.join(', ')} check`
      : outcome.ok
      ? 'all checks passed'
      : outcome.failure === 'error-result' && outcome.checks.length > 0
        ? outcome.detail
        : `${outcome.detail}\nlast console lines (${serialLog}):\n${outcome.consoleTail.map((l) => `  | ${l}`).join('\n')}`;
    return {
      ok: outcome.ok && missing.length === 0 && outcome.checks.length > 0 && outcome.checks.every((c) => c.status !== 'fail'),
      detail,
      checks: outcome.checks,
      warnings: outcome.warnings,
      ...(outcome.resultMs !== undefined ? { bootMs: outcome.resultMs } : {}),
      ...(outcome.timing.length > 0 ? { boot: parseBootTiming(outcome.timing, outcome.resultMs, outcome.bootLoader) } : {}),
      serialLog,
      ...(bootPlot ? { bootPlot } : {}),
      ...(options.firmware ? { firmware: options.firmware } : {}),
      ...(grownTo !== undefined ? { grownToBytes: grownTo } : {}),
    };
  } finally {
    await rm(overlay.path, { force: true });
    await rm(vars, { force: true });
    await rm(iso, { force: true });
    await rm(join(options.workDir, 'smoke-seed'), { recursive: true, force: true });
  }
}

/** How much bigger the smoke boots' disk is than the image: a cluster enlarges the disk it copies, and the root must grow into it. */
export const smokeGrowBytes = 2 * 1024 ** 3;

/** Pure: the boots that prove the image's firmware claim (an image that claims none: SeaBIOS, as ever). */
export function smokeFirmwares(profile: Profile): BootFirmware[] {
  const firmware = firmwareOf(profile);
  return firmware ? bootFirmwares(firmware, profile.disk.secureBoot) : ['bios'];
}

/**
 * Pure: the smoke boots' disk growth when the layout is ours (a bootstrapped base), with the
 * partitions that must not move; undefined for an imported image, whose layout is not known.
 */
export function smokeGrowth(layout: DiskLayout | undefined): { bytes: number; keep: { partnum: number; offset: number; bytes: number }[] } | undefined {
  if (!layout) return undefined;
  const keep = [
    ...(layout.apps ? [{ partnum: partitionNumber.apps, offset: layout.apps.offset, bytes: layout.apps.bytes }] : []),
    ...(layout.biosBoot ? [{ partnum: partitionNumber.biosBoot, ...layout.biosBoot }] : []),
    ...(layout.esp ? [{ partnum: partitionNumber.esp, offset: layout.esp.offset, bytes: layout.esp.bytes }] : []),
  ];
  return { bytes: smokeGrowBytes, keep };
}

/**
 * Boot the image once per firmware, in order, stopping at the first that fails: each boot's
 * report as it ends (`onReport`), then all of them. `grow`: grow each boot's disk and check the
 * layout held (smokeGrowth).
 */
export async function smokeEach(
  image: DiskRef,
  boots: readonly BootFirmware[],
  options: SmokeOptions,
  grow: ReturnType<typeof smokeGrowth>,
  onReport?: (report: SmokeReport) => void,
): Promise<SmokeReport[]> {
  const reports: SmokeReport[] = [];
  for (const firmware of boots) {
    if (boots.length > 1) options.step?.update(bootFirmwareTitle[firmware]);
    const report = await smokeImage(image, {
      ...options,
      target: { ...options.target, firmware, ...(grow ? { grow: { diskBytes: 0, keep: grow.keep } } : {}) },
      firmware,
      ...(grow ? { growBytes: grow.bytes } : {}),
    });
    reports.push(report);
    onReport?.(report);
    if (!report.ok) break;
  }
  return reports;
}

/**
 * Pure: several boots' reports as one (the smoke command's exit code, JUnit file and JSON): ok
 * when every boot was, each boot's checks named by its firmware when there is more than one,
 * and the boots themselves under `boots`.
 */
export function mergeReports(reports: SmokeReport[]): SmokeReport & { boots?: SmokeReport[] } {
  const first = reports[0];
  if (!first) throw new Error('mergeReports: no boot');
  if (reports.length === 1) return first;
  const failed = reports.find((r) => !r.ok);
  return {
    ...first,
    ok: !failed,
    detail: failed ? `${failed.firmware ?? 'bios'}: ${failed.detail}` : reports.map((r) => `${r.firmware ?? 'bios'}: ${r.detail}`).join('; '),
    checks: reports.flatMap((r) => r.checks.map((c) => ({ ...c, id: `${r.firmware ?? 'bios'}.${c.id}` }))),
    warnings: reports.flatMap((r) => r.warnings),
    ...(failed ? { serialLog: failed.serialLog } : {}),
    boots: reports,
  };
}

export function smokeJunitCases(report: SmokeReport): JunitCase[] {
  const className = report.firmware && report.firmware !== 'bios' ? `guestforge.smoke.${report.firmware}` : 'guestforge.smoke';
  const cases: JunitCase[] = report.checks.map((c) => ({
    name: c.id,
    className,
    status: c.status === 'fail' ? 'fail' : 'pass',
    message: c.detail,
  }));
  cases.unshift({
    name: 'boot',
    className,
    status: report.bootMs !== undefined ? 'pass' : 'fail',
    message: report.bootMs !== undefined ? `result line after ${(report.bootMs / 1000).toFixed(1)}s` : report.detail,
    ...(report.bootMs !== undefined ? { seconds: report.bootMs / 1000 } : {}),
  });
  return cases;
}

export function formatSmoke(report: SmokeReport): string[] {
  const lines = report.checks.map((c) => `${c.status.toUpperCase()}  ${c.id}  ${c.detail}`);
  const under = report.firmware ? ` (${report.firmware})` : '';
  lines.push(report.ok
    ? `smoke${under}: ${report.checks.length} checks passed, result after ${((report.bootMs ?? 0) / 1000).toFixed(1)}s`
    : `smoke${under} failed: ${report.detail}`);
  return lines;
}
