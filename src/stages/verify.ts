/**
 * Stage 5: judge the image against the cluster's guest requirements. The
 * facts were read in the seal stage's guestfish session, after the
 * clean-up, so this costs no appliance launch; without them (a family with
 * no seal stage) it does one read-only launch of its own.
 */
import { layoutRules } from '../policy/layout.ts';
import { activeTrims } from '../policy/boot.ts';
import { firmwareOf } from '../policy/firmware.ts';
import { UserError } from '../errors.ts';
import { evaluate, verifyImage } from '../verify/run.ts';
import { failedRules, formatReport } from '../verify/print.ts';
import type { VerifyOptions, GuestFamily } from '../model/verify.ts';
import type { Profile } from '../profile/schema.ts';
import type { Stage } from './types.ts';

/** The verify options a profile asks for; `families`: what the image may be (the build's: its own family). */
export function verifyOptionsOf(profile: Profile, families: readonly GuestFamily[]): VerifyOptions {
  return {
    families,
    requireVrdma: profile.vrdma.enabled,
    // The stub is made at bootstrap: an imported base keeps what it has (the trim's table row says so).
    requireNoRocm: Boolean(profile.base.bootstrap) && activeTrims(profile).some((t) => t.id === 'ucx-no-rocm'),
    ...(firmwareOf(profile) ? { firmware: firmwareOf(profile)! } : {}),
    secureBoot: profile.disk.secureBoot,
    workspace: profile.layout.workspace,
    workspaceMode: profile.layout.workspaceMode,
    optVm: profile.layout.optVm,
    home: profile.layout.home,
  };
}

export const verifyStage: Stage = {
  name: 'verify',
  title: 'verify guest requirements',
  describe(profile) {
    const firmware = firmwareOf(profile);
    return `cloud-init + NoCloud, ${layoutRules.map((r) => r.title).join(', ')}${profile.vrdma.enabled ? ', vRDMA' : ''}, ${firmware ? `boots under ${firmware}` : 'the firmwares it boots under'}${profile.disk.secureBoot ? ', Secure Boot chain signed' : ''}, hygiene`;
  },
  async run(ctx, step) {
    const options = verifyOptionsOf(ctx.profile, ctx.driver.guest ? [ctx.driver.guest] : []);
    const report = ctx.facts
      ? evaluate(ctx.disk!.path, ctx.facts, options)
      : await verifyImage(ctx.disk!, ctx.accel, options);
    ctx.verify = report;
    for (const line of formatReport(report)) ctx.log.detail(`verify: ${line}`);
    const failed = failedRules(report);
    if (failed.length > 0) {
      throw new UserError(`the image does not meet the guest requirements (${failed.length} rule${failed.length > 1 ? 's' : ''} failed)`, {
        hint: failed.join('\n'),
      });
    }
    const warned = report.results.filter((r) => r.verdict === 'warn');
    for (const w of warned) ctx.log.warn(`verify ${w.id}: ${w.evidence}`);
    step.update(`${report.results.filter((r) => r.verdict === 'pass').length} rules passed${warned.length ? `, ${warned.length} warnings` : ''}`);
  },
  async cleanup() {
    // Nothing to undo: verify reads the disk (one read-only launch) and writes only ctx.verify.
  },
};
