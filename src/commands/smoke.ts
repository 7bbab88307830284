import { makeWorkDir } from '../util/workdir.ts';
import { ensureTrustedDir } from '../util/trusted-path.ts';
import { defaultLayout, expectProblem } from '../profile/schema.ts';
import { basename, join } from 'node:path';
import { smokeTargetOf, type SmokeTarget } from '../cloudinit/userdata.ts';
import { ExitCode, UsageError } from '../errors.ts';
import { resolveAccel } from '../vm/backend.ts';
import { withSignals } from '../pipeline/signals.ts';
import { Logger } from '../log.ts';
import { loadProfileOrThrow } from '../loader/index.ts';
import { parseDuration } from '../profile/units.ts';
import { writeJunit } from '../report/junit.ts';
import { formatSmoke, mergeReports, smokeEach, smokeFirmwares, smokeGrowth, smokeJunitCases } from '../smoke/run.ts';
import type { BootFirmware } from '../model/disk.ts';
import type { SmokeReport } from '../model/smoke.ts';
import { nonce as makeNonce } from '../util/fs.ts';
import { cacheDir } from '../util/paths.ts';
import { rm } from 'node:fs/promises';
import { diskFormatOf } from './verify.ts';
import { driverFor, recognizeImage } from '../os/index.ts';
import { allowHostPathOption, loadOptionsOf, parseCommandArgs } from './args.ts';
import { starterFor, type Backend } from '../vm/backend.ts';
import { defaultPool, isRemote } from '../vm/libvirt.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('smoke', args, {
    'allow-backing': { type: 'boolean' },
    profile: { type: 'string' },
    require: { type: 'string', multiple: true },
    junit: { type: 'string' },
    timeout: { type: 'string', default: '10m' },
    'log-dir': { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
    accel: { type: 'string', default: 'auto' },
    backend: { type: 'string', default: 'qemu' },
    connect: { type: 'string' },
    pool: { type: 'string', default: defaultPool },
    expect: { type: 'string' },
    'stays-up': { type: 'boolean' },
    firmware: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    ...allowHostPathOption,
  });
  const [image] = positionals;
  if (!image || positionals.length > 1) throw new UsageError('smoke: name one image', { hint: 'guestforge smoke out/debian-12-hpc.qcow2 [--junit smoke.xml]' });
  let timeoutMs: number;
  try {
    timeoutMs = parseDuration(values.timeout);
  } catch {
    throw new UsageError(`smoke: --timeout "${values.timeout}" is not a duration`, { hint: 'like 90s or 10m' });
  }
  const accelWanted = values.accel;
  if (accelWanted !== 'auto' && accelWanted !== 'kvm' && accelWanted !== 'tcg') throw new UsageError(`smoke: --accel must be auto, kvm or tcg, not "${accelWanted}"`);
  if (values.connect) values.backend = 'libvirt';
  if (values.backend !== 'qemu' && values.backend !== 'libvirt') throw new UsageError(`smoke: --backend must be qemu or libvirt, not "${values.backend}"`);
  isRemote(values.connect); // a malformed URI is a usage error before anything starts
  const backend: Backend = values.backend === 'qemu' ? { kind: 'qemu' } : { kind: 'libvirt', target: { ...(values.connect ? { uri: values.connect } : {}), pool: values.pool } };
  const format = await diskFormatOf(image, 'smoke', { allowBacking: Boolean(values['allow-backing']) });
  // An image its family recognises (OSv) is judged that family's way (the console: the app's output, the power state), not with a seed.
  const own = await recognizeImage(image, format);
  let expect = values.expect;
  let powerOff = !values['stays-up'];
  const expectWrong = expect !== undefined ? expectProblem(expect) : undefined;
  if (expectWrong) throw new UsageError(`smoke: --expect: ${expectWrong}`);
  let target: SmokeTarget = { ...defaultLayout, vrdma: false };
  // Without a profile: SeaBIOS, unless --firmware says; with one, every firmware it claims, its disk grown as a cluster grows it.
  let boots: BootFirmware[] = ['bios'];
  let grow: ReturnType<typeof smokeGrowth>;
  let profileFamily = '';
  // The image's name (hostname in the seed, part of a libvirt domain's name) unless a profile says.
  let name = basename(image).replace(/\.(qcow2|raw|img)$/, '').replace(/[^A-Za-z0-9-]/g, '-') || 'smoke';
  if (values.profile) {
    const { profile } = await loadProfileOrThrow(values.profile, loadOptionsOf(values));
    target = smokeTargetOf(profile, driverFor(profile.os.family).appsVolume?.(profile));
    boots = smokeFirmwares(profile);
    grow = smokeGrowth(driverFor(profile.os.family).diskLayout?.(profile));
    name = profile.name;
    profileFamily = profile.os.family;
    expect ??= profile.smoke.expect;
    if (!values['stays-up']) powerOff = profile.smoke.powerOff;
  }
  if (values.profile && own && profileFamily !== own.family) throw new UsageError(`smoke: ${image} looks like ${own.looksLike}, but the profile is a ${profileFamily} one`, { hint: 'check the image and the profile belong together' });
  if (!own && (expect !== undefined || values['stays-up'])) throw new UsageError('smoke: --expect and --stays-up are for OSv images', { hint: 'a Linux image is checked from inside, through its seed' });
  if (own && values.backend !== 'qemu') throw new UsageError('smoke: OSv images boot with --backend qemu only');
  if (values.firmware) {
    const known = ['bios', 'uefi', 'uefi-secure'];
    const wrong = values.firmware.find((f) => !known.includes(f));
    if (wrong !== undefined) throw new UsageError(`smoke: --firmware must be ${known.join(', ')}, not "${wrong}"`, { hint: 'bios: SeaBIOS on pc; uefi: OVMF on q35; uefi-secure: OVMF with Secure Boot enforced' });
    if (own) throw new UsageError('smoke: --firmware is for Linux images: OSv boots through its own BIOS loader');
    boots = [...new Set(values.firmware as BootFirmware[])];
  }
  for (const r of values.require ?? []) {
    if (r !== 'vrdma') throw new UsageError(`smoke: unknown --require "${r}"`, { hint: 'known: vrdma' });
    target = { ...target, vrdma: true };
  }
  const log = new Logger({ verbose: Boolean(values.verbose) });
  const nonce = makeNonce(6);
  const logDir = await ensureTrustedDir(values['log-dir'] ?? join(cacheDir(), 'logs', `smoke-${new Date().toISOString().replace(/[:.]/g, '-')}`), '--log-dir', 0o700);
  const workDir = await makeWorkDir(`smoke-${nonce}`, `smoke ${image}`);
  const report = await withSignals(async (signal) => {
    const step = log.step(`smoke boot ${image}`);
    try {
      const r = own
        ? await own.smoke({ path: image, format }, {
          ...(expect !== undefined ? { expect } : {}), powerOff, accel: await resolveAccel(accelWanted, log), workDir, logDir, timeoutMs, log, signal, step,
        })
        : await smokeEach({ path: image, format }, boots, {
          name, target, accel: await resolveAccel(accelWanted, log, backend), nonce, workDir, logDir,
          timeoutMs, stallMs: Math.min(timeoutMs, 5 * 60_000), memoryMiB: 1024, cpus: 2, log, signal, step,
          starter: starterFor(backend, { namePrefix: `${name}-smoke`, diskIsResult: false, log }),
        }, grow).then(mergeReports);
      if (r.ok) step.succeed(`${own ? 'done' : 'result'} after ${((r.bootMs ?? 0) / 1000).toFixed(1)}s`);
      else step.fail();
      return r;
    } catch (error) {
      step.fail();
      throw error;
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  });
  const each: SmokeReport[] = (report as { boots?: SmokeReport[] }).boots ?? [report];
  if (values.junit) await writeJunit(values.junit, `guestforge smoke ${image}`, each.flatMap(smokeJunitCases));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    for (const boot of each) {
      for (const line of formatSmoke(boot)) process.stdout.write(`${line}\n`);
      process.stdout.write(`console log: ${boot.serialLog}\n`);
    }
  }
  return report.ok ? ExitCode.ok : ExitCode.failure;
}
