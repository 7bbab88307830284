import { stat } from 'node:fs/promises';
import { ExitCode, UsageError } from '../errors.ts';
import { withSignals } from '../pipeline/signals.ts';
import { resolveAccel } from '../vm/backend.ts';
import { Logger } from '../log.ts';
import { loadProfileOrThrow } from '../loader/index.ts';
import { writeJunit } from '../report/junit.ts';
import { checkedBackingChain } from '../vm/image.ts';
import { verifyOptionsOf } from '../stages/verify.ts';
import { failedRules, formatReport, junitCases } from '../verify/print.ts';
import { defaultVerifyOptions, verifyImage } from '../verify/run.ts';
import { rules } from '../verify/rules.ts';
import { sysprepOf } from '../guestfs/sysprep.ts';
import type { Rule } from '../model/verify.ts';

/** A rule's record as `verify --explain` prints it. */
export function explainRule(rule: Rule): string[] {
  return [
    `${rule.id}: ${rule.title}`,
    `why: ${rule.why}`,
    `passes when: ${rule.passes}`,
    ...(rule.acceptable?.length ? [`accepted states (each checked by the tests): ${rule.acceptable.map((a) => a.state).join('; ')}`] : []),
    ...sysprepOf(rule.id).map((op) => `made so by: the seal stage's sysprep operation ${op.id} (${op.what})`),
    ...(rule.references ?? []).map((r) => `see: ${r}`),
  ];
}
import { allowHostPathOption, loadOptionsOf, parseCommandArgs } from './args.ts';
import { guestFamilies, recognizeImage } from '../os/index.ts';

/** The image's format, or a usage error when it is missing or not a disk image. */
export async function diskFormatOf(image: string, command: string, options: { allowBacking?: boolean; vmdk: true }): Promise<'qcow2' | 'raw' | 'vmdk'>;
export async function diskFormatOf(image: string, command: string, options?: { allowBacking?: boolean }): Promise<'qcow2' | 'raw'>;
export async function diskFormatOf(image: string, command: string, options: { allowBacking?: boolean; vmdk?: boolean } = {}): Promise<'qcow2' | 'raw' | 'vmdk'> {
  const info = await stat(image).catch(() => undefined);
  if (!info) throw new UsageError(`${command}: no such file: ${image}`);
  if (!info.isFile()) throw new UsageError(`${command}: not a file: ${image}`);
  const { format } = (await checkedBackingChain(image, command, options))[0]!;
  // verify reads vmdk too (libguestfs through qemu); the VMs boot qcow2 or raw.
  if (format === 'vmdk' && options.vmdk) return format;
  if (format !== 'qcow2' && format !== 'raw') {
    throw new UsageError(`${command}: ${image} is a ${format} image`, { hint: `convert it first: qemu-img convert -O qcow2 ${image} image.qcow2` });
  }
  // Anything is a "raw image" to qemu-img; a disk has at least a boot sector.
  if (format === 'raw' && info.size < 1024 * 1024) throw new UsageError(`${command}: ${image} is not a disk image (${info.size} bytes)`);
  return format;
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('verify', args, {
    'allow-backing': { type: 'boolean' },
    profile: { type: 'string' },
    require: { type: 'string', multiple: true },
    firmware: { type: 'string' },
    json: { type: 'boolean' },
    junit: { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
    explain: { type: 'string' },
    ...allowHostPathOption,
  });
  const explained = values.explain === undefined ? undefined : rules.find((r) => r.id === values.explain);
  if (values.explain !== undefined && !explained) throw new UsageError(`verify: no rule "${values.explain}"`, { hint: `rules: ${rules.map((r) => r.id).join(', ')}` });
  const [image] = positionals;
  // --explain alone: the record; with an image, also what the rule saw in it.
  if (explained && positionals.length === 0) {
    for (const line of explainRule(explained)) process.stdout.write(`${line}\n`);
    return ExitCode.ok;
  }
  if (!image || positionals.length > 1) throw new UsageError('verify: name one image', { hint: 'guestforge verify out/debian-12-hpc.qcow2 [--profile p] [--require vrdma] [--explain RULE]' });
  for (const r of values.require ?? []) {
    if (r !== 'vrdma' && r !== 'no-rocm' && r !== 'secure-boot') throw new UsageError(`verify: unknown --require "${r}"`, { hint: 'known: vrdma, no-rocm, secure-boot' });
  }
  const format = await diskFormatOf(image, 'verify', { allowBacking: Boolean(values['allow-backing']), vmdk: true });
  // An image its family recognises (OSv: no filesystem libguestfs reads) is reported its way.
  const own = await recognizeImage(image, format);
  const profileFamily = values.profile ? (await loadProfileOrThrow(values.profile, loadOptionsOf(values))).profile.os.family : undefined;
  // With a profile, its family decides: an image that only looks like another family's does not skip the Linux rules.
  if (own !== undefined && profileFamily !== undefined && profileFamily !== own.family) {
    process.stderr.write(`error: ${image} looks like ${own.looksLike}, but the profile is a ${profileFamily} one\n`);
    return ExitCode.failure;
  }
  if (own !== undefined) {
    if (values.json) process.stdout.write(`${JSON.stringify({ image, ...own.report }, null, 2)}\n`);
    else process.stdout.write([...own.lines, ''].join('\n'));
    return ExitCode.ok;
  }
  const options = values.profile ? verifyOptionsOf((await loadProfileOrThrow(values.profile, loadOptionsOf(values))).profile, guestFamilies) : { ...defaultVerifyOptions, families: guestFamilies };
  if (values.require?.includes('vrdma')) options.requireVrdma = true;
  if (values.require?.includes('no-rocm')) options.requireNoRocm = true;
  if (values.require?.includes('secure-boot')) options.secureBoot = true;
  if (values.firmware !== undefined) {
    if (values.firmware !== 'bios' && values.firmware !== 'uefi' && values.firmware !== 'hybrid') throw new UsageError(`verify: --firmware must be bios, uefi or hybrid, not "${values.firmware}"`, { hint: 'the firmware the image claims; boot.firmware fails when it cannot boot under it' });
    options.firmware = values.firmware;
  }
  const log = new Logger({ verbose: Boolean(values.verbose) });
  const report = await withSignals(async () => {
    const step = log.step(`verify ${image} (one read-only guestfish launch)`);
    try {
      const r = await verifyImage({ path: image, format }, await resolveAccel('auto', log), options, (r) => log.warn(`${r}; trying once more`));
      step.succeed();
      return r;
    } catch (error) {
      step.fail();
      // UnknownLayoutError is a usage error (exit 2) saying what was found.
      throw error;
    }
  });
  if (explained) {
    const result = report.results.find((r) => r.id === explained.id)!;
    for (const line of explainRule(explained)) process.stdout.write(`${line}\n`);
    process.stdout.write(`in ${image}: ${result.verdict.toUpperCase()}  ${result.evidence}\n`);
    return result.verdict === 'fail' ? ExitCode.failure : ExitCode.ok;
  }
  if (values.junit) await writeJunit(values.junit, `guestforge verify ${image}`, junitCases(report));
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else for (const line of formatReport(report)) process.stdout.write(`${line}\n`);
  if (!values.json && failedRules(report).length > 0) process.stderr.write(`${image} does not meet the cluster's guest requirements\n`);
  return report.ok ? ExitCode.ok : ExitCode.failure;
}
