/** Stage 7: boot the finished image as the cluster would and check from inside. */
import { inGuestLayoutIds } from '../policy/layout.ts';
import { join } from 'node:path';
import { smokeTargetOf } from '../cloudinit/userdata.ts';
import { UserError } from '../errors.ts';
import { parseDuration, parseSize } from '../profile/units.ts';
import { formatSmoke, smokeImage } from '../smoke/run.ts';
import { formatBootTiming } from '../smoke/boot-timing.ts';
import { starterFor } from '../vm/backend.ts';
import type { Stage } from './types.ts';
import { removeWorkFiles } from './cleanup.ts';

export const smokeStage: Stage = {
  name: 'smoke',
  title: 'smoke boot',
  describe(profile, driver) {
    const own = driver.describeSmoke?.(profile);
    if (own) return own;
    return `boot ${profile.name}.${profile.disk.format} with a fresh seed; check cloud-init done, NoCloud, ${inGuestLayoutIds(profile.layout).join(', ')}${profile.vrdma.enabled ? ', vRDMA link, verbs device, ib_send_bw loopback' : ''}; timeout ${profile.build.smokeTimeout}`;
  },
  async run(ctx, step) {
    const image = ctx.outputs[0];
    if (!image) throw new Error('smoke stage: no output image to boot');
    const ref = { path: image.path, format: image.format as 'qcow2' | 'raw' };
    const report = ctx.driver.smoke ? await ctx.driver.smoke(ctx, step, ref) : await smokeImage(ref, {
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
    });
    ctx.smoke = report;
    for (const line of formatSmoke(report)) ctx.log.info(`  ${line}`);
    if (report.boot) for (const line of formatBootTiming(report.boot)) ctx.log.detail(`  boot ${line}`);
    if (!report.ok) throw new UserError(`smoke test failed: ${report.detail.split('\n')[0]}`, { hint: report.detail.split('\n').slice(1).join('\n') || `console log: ${report.serialLog}` });
    step.update(`${report.checks.length} checks, ${ctx.driver.smoke ? 'done' : 'result'} after ${((report.bootMs ?? 0) / 1000).toFixed(0)}s`);
  },
  async cleanup(ctx, end) {
    // The smoke VM is stopped by smokeImage (or the driver's smoke) on every exit; its seed and overlay stay here.
    await removeWorkFiles(ctx, end, 'smoke');
  },
};
