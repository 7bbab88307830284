/** Stage 7: boot the finished image as the cluster would and check from inside. */
import { inGuestLayoutIds } from '../policy/layout.ts';
import { join } from 'node:path';
import { smokeTargetOf } from '../cloudinit/userdata.ts';
import { UserError } from '../errors.ts';
import { parseDuration, parseSize } from '../profile/units.ts';
import { formatSmoke, smokeEach, smokeFirmwares, smokeGrowth, smokeGrowBytes } from '../smoke/run.ts';
import { formatBootTiming } from '../smoke/boot-timing.ts';
import { starterFor } from '../vm/backend.ts';
import type { Stage } from './types.ts';
import { removeWorkFiles } from './cleanup.ts';
import type { SmokeReport } from '../model/smoke.ts';
import { bootFirmwareTitle } from '../policy/firmware.ts';

function smokeFailed(report: SmokeReport): UserError {
  const under = report.firmware ? ` under ${bootFirmwareTitle[report.firmware]}` : '';
  return new UserError(`smoke test failed${under}: ${report.detail.split('\n')[0]}`, { hint: report.detail.split('\n').slice(1).join('\n') || `console log: ${report.serialLog}` });
}

export const smokeStage: Stage = {
  name: 'smoke',
  title: 'smoke boot',
  describe(profile, driver) {
    const own = driver.describeSmoke?.(profile);
    if (own) return own;
    const grown = driver.diskLayout?.(profile) ? `, its disk grown by ${smokeGrowBytes / 1024 ** 3} GiB,` : '';
    return `boot ${profile.name}.${profile.disk.format}${grown} under ${smokeFirmwares(profile).map((f) => bootFirmwareTitle[f]).join(', then ')} with a fresh seed; check cloud-init done, NoCloud, ${inGuestLayoutIds(profile.layout).join(', ')}${profile.vrdma.enabled ? ', vRDMA link, verbs device, ib_send_bw loopback' : ''}; timeout ${profile.build.smokeTimeout}`;
  },
  async run(ctx, step) {
    const image = ctx.outputs[0];
    if (!image) throw new Error('smoke stage: no output image to boot');
    const ref = { path: image.path, format: image.format as 'qcow2' | 'raw' };
    if (ctx.driver.smoke) {
      const report = await ctx.driver.smoke(ctx, step, ref);
      ctx.smoke = report;
      ctx.smokes = [report];
      for (const line of formatSmoke(report)) ctx.log.info(`  ${line}`);
      if (!report.ok) throw smokeFailed(report);
      step.update(`${report.checks.length} checks, done after ${((report.bootMs ?? 0) / 1000).toFixed(0)}s`);
      return;
    }
    const grow = smokeGrowth(ctx.driver.diskLayout?.(ctx.profile));
    const reports = await smokeEach(ref, ctx.options.smokeFirmware ?? smokeFirmwares(ctx.profile), {
      name: ctx.profile.name,
      target: smokeTargetOf(ctx.profile, ctx.driver.appsVolume?.(ctx.profile)),
      accel: ctx.accel,
      nonce: ctx.nonce,
      workDir: join(ctx.workDir, 'smoke'),
      logDir: ctx.logDir,
      timeoutMs: parseDuration(ctx.profile.build.smokeTimeout),
      stallMs: parseDuration(ctx.profile.build.stallTimeout),
      memoryMiB: Math.floor(parseSize(ctx.profile.build.memory) / 1024 / 1024),
      cpus: ctx.profile.build.cpus,
      log: ctx.log,
      signal: ctx.signal,
      step,
      starter: starterFor(ctx.backend, { namePrefix: `${ctx.profile.name}-smoke`, diskIsResult: false, log: ctx.log }),
    }, grow, (report) => {
      ctx.smokes = [...(ctx.smokes ?? []), report];
      ctx.smoke ??= report;
      for (const line of formatSmoke(report)) ctx.log.info(`  ${line}`);
      if (report.boot) for (const line of formatBootTiming(report.boot)) ctx.log.detail(`  boot (${report.firmware ?? 'bios'}) ${line}`);
    });
    const failed = reports.find((r) => !r.ok);
    if (failed) throw smokeFailed(failed);
    step.update(reports.map((r) => `${r.firmware ?? 'bios'} ${r.checks.length} checks, result after ${((r.bootMs ?? 0) / 1000).toFixed(0)}s`).join('; '));
  },
  async cleanup(ctx, end) {
    // The smoke VM is stopped by smokeImage (or the driver's smoke) on every exit; its seed and overlay stay here.
    await removeWorkFiles(ctx, end, 'smoke');
  },
};
