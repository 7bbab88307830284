import { errorMessage, ExitCode, UsageError, UserError } from '../errors.ts';
import { Logger, type BuildEvent } from '../log.ts';
import { loadProfileOrThrow } from '../loader/index.ts';
import { formatSize } from '../profile/units.ts';
import { writeJunit } from '../report/junit.ts';
import { runBuild } from '../pipeline/pipeline.ts';
import { withSignals } from '../pipeline/signals.ts';
import { smokeFirmwares, smokeJunitCases } from '../smoke/run.ts';
import { bootFirmwareTitle } from '../policy/firmware.ts';
import type { BootFirmware } from '../model/disk.ts';
import { junitCases } from '../verify/print.ts';
import { checkSigningKey } from '../publish/sign.ts';
import { allowHostPathOption, loadOptionsOf, parseCommandArgs } from './args.ts';
import { runMatrix, summaryTable, type MatrixJob } from '../pipeline/matrix.ts';
import { isRemote } from '../vm/libvirt.ts';
import { stageNames } from '../model/stage.ts';
import { accelFlag, backendFlag, debugOptions, keptLines, withKeptHint, type DebugOptions, type Values } from './build-flags.ts';

export async function run(args: string[]): Promise<number> {
  if (!args.includes('--json-events')) return command(args);
  // stdout is the event channel: one JSON object per line, the last one the result (usage errors included).
  const emit = (event: BuildEvent) => process.stdout.write(`${JSON.stringify(event)}\n`);
  try {
    const code = await command(args, emit);
    emit({ type: 'result', ok: true, exitCode: code });
    return code;
  } catch (error) {
    const user = error instanceof UserError;
    emit({ type: 'result', ok: false, error: errorMessage(error), ...(user && error.hint ? { hint: error.hint } : {}), exitCode: user ? error.exitCode : ExitCode.failure });
    throw error;
  }
}

async function command(args: string[], emit?: (event: BuildEvent) => void): Promise<number> {
  const { values, positionals } = parseCommandArgs('build', args, {
    output: { type: 'string', short: 'o', default: 'out' },
    'no-smoke': { type: 'boolean' },
    'smoke-firmware': { type: 'string' },
    junit: { type: 'string' },
    'keep-work': { type: 'boolean' },
    'no-cache': { type: 'boolean' },
    'rebuild-from': { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
    accel: { type: 'string' },
    'package-only': { type: 'boolean' },
    backend: { type: 'string' },
    connect: { type: 'string' },
    pool: { type: 'string' },
    jobs: { type: 'string', short: 'j' },
    'json-events': { type: 'boolean' },
    'sign-key': { type: 'string' },
    'on-error': { type: 'string' },
    'debug-ssh-key': { type: 'string' },
    break: { type: 'string' },
    ...allowHostPathOption,
  });
  if (positionals.length === 0) throw new UsageError('build: name a profile', { hint: 'guestforge build profiles/debian-12-hpc.yaml -o out/' });
  const accel = accelFlag(values.accel, 'build');
  const backend = backendFlag(values.backend, 'build');
  const rebuildFrom = values['rebuild-from'];
  if (rebuildFrom !== undefined && !(stageNames as readonly string[]).includes(rebuildFrom)) {
    throw new UsageError(`build: --rebuild-from takes a stage name (${stageNames.join(', ')}), not "${rebuildFrom}"`);
  }
  const hosts = values.connect ? values.connect.split(',').map((h) => h.trim()).filter(Boolean) : [];
  for (const uri of hosts) isRemote(uri); // a malformed URI is a usage error now, not in the middle of a build
  if (backend === 'qemu' && hosts.length > 0) throw new UsageError('build: --connect is for --backend libvirt');

  const debug = await debugOptions(values, backend);
  smokeFirmwareFlag(values['smoke-firmware']);
  if (positionals.length > 1 || values.jobs !== undefined) {
    if (debug.onError !== 'cleanup' || debug.breakAt) throw new UsageError('build: --on-error keep|ask and --break are for one profile (a look inside one build)');
    if (emit) throw new UsageError('build: --json-events is for one profile (a build of several reads its children\'s events and prints a table)');
    return matrix(positionals, values, hosts);
  }
  if (hosts.length > 1) throw new UsageError('build: several --connect URIs need several profiles to spread', { hint: 'guestforge build a.yaml b.yaml --jobs 2 --connect URI1,URI2' });
  return single(positionals[0]!, values, backend, hosts, accel, rebuildFrom, debug, emit);
}


async function single(file: string, values: Values, backend: 'qemu' | 'libvirt' | undefined, hosts: string[], accel: 'auto' | 'kvm' | 'tcg' | undefined, rebuildFrom: string | undefined, debug: DebugOptions, emit?: (event: BuildEvent) => void): Promise<number> {
  const text = (name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const junit = text('junit');
  const pool = text('pool');
  const loaded = await loadProfileOrThrow(file, loadOptionsOf(values));
  const smokeFirmware = smokeFirmwareFlag(text('smoke-firmware'), smokeFirmwares(loaded.profile));
  const signKey = text('sign-key');
  if (signKey) await checkSigningKey(signKey);
  if (backend || hosts[0]) loaded.profile.build.backend = (backend ?? 'libvirt') as 'qemu' | 'libvirt';
  if (hosts[0]) loaded.profile.build.connect = hosts[0];
  if (pool) loaded.profile.build.pool = pool;
  if (debug.onError !== 'cleanup' && loaded.profile.build.backend !== 'qemu') {
    throw new UsageError(`build: --on-error ${debug.onError} keeps the build VM running for you, which the qemu backend does; libvirt's build VMs are not kept yet (${file} or --backend/--connect chose libvirt)`, { hint: 'add --backend qemu for the look inside' });
  }
  const log = new Logger({ verbose: Boolean(values.verbose), ...(emit ? { events: emit } : {}) });
  const started = Date.now();
  // runBuild returns stage failures with the context (for JUnit); withSignals turns an interruption into exit 130/143.
  const { ctx, error, kept } = await withSignals((signal) => runBuild(loaded, {
    ...debug,
    outDir: text('output') ?? 'out',
    smoke: !values['no-smoke'],
    ...(smokeFirmware ? { smokeFirmware } : {}),
    keepWork: Boolean(values['keep-work']),
    noCache: Boolean(values['no-cache']),
    packageOnly: Boolean(values['package-only']),
    ...(signKey ? { signKey } : {}),
    ...(rebuildFrom ? { rebuildFrom: rebuildFrom as (typeof stageNames)[number] } : {}),
    ...(accel ? { accel } : {}),
  }, log, signal));

  if (junit && (ctx.verify || ctx.smoke)) {
    await writeJunit(junit, `guestforge build ${loaded.profile.name}`, [
      ...(ctx.verify ? junitCases(ctx.verify) : []),
      ...(ctx.smokes ?? (ctx.smoke ? [ctx.smoke] : [])).flatMap(smokeJunitCases),
    ]);
  }
  if (kept) {
    const lines = keptLines(kept, Boolean(kept.vm), { outDir: ctx.options.outDir, smoke: ctx.options.smoke, signKey, accel, backend, connect: hosts[0], pool, allowHostPaths: loaded.allowHostPaths });
    if (error) throw withKeptHint(error, lines);
    (emit ? process.stderr : process.stdout).write(`${lines.join('\n')}\n`);
    return ExitCode.ok;
  }
  if (error) throw error;
  // With --json-events, stdout carries only events: the summary goes to stderr.
  const out = (s: string) => (emit ? process.stderr : process.stdout).write(`${s}\n`);
  for (const w of ctx.warnings) out(`warning: ${w}`);
  if (ctx.packageDir) out(`Capstan package: ${ctx.packageDir}`);
  for (const o of ctx.outputs) {
    out(`${o.path}  ${formatSize(o.bytes)}  sha256 ${o.sha256.slice(0, 16)}…`);
    emit?.({ type: 'output', path: o.path, bytes: o.bytes, sha256: o.sha256 });
  }
  out(`stages: ${ctx.timings.map((t) => `${t.stage} ${(t.ms / 1000).toFixed(0)}s`).join(' · ')} · total ${((Date.now() - started) / 1000).toFixed(0)}s`);
  if (ctx.outputs.length > 0) out(`manifest: ${ctx.options.outDir}/${loaded.profile.name}.manifest.json · logs: ${ctx.logDir}${ctx.smoke ? '' : ' · smoke skipped'}`);
  return ExitCode.ok;
}

/**
 * Several profiles: every one is validated before anything starts, then
 * each is built by a child guestforge (see src/pipeline/matrix.ts).
 */
async function matrix(files: string[], values: Values, hosts: string[]): Promise<number> {
  const jobs = values.jobs === undefined ? 1 : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`build: --jobs must be a whole number of at least 1, not "${values.jobs}"`);
  const loaded: MatrixJob[] = [];
  for (const file of files) loaded.push({ file, name: (await loadProfileOrThrow(file, loadOptionsOf(values))).profile.name });
  const seen = new Map<string, string>();
  for (const job of loaded) {
    const other = seen.get(job.name);
    if (other) throw new UsageError(`build: ${other} and ${job.file} both build "${job.name}": their outputs would collide`, { hint: 'give each profile its own name' });
    seen.set(job.name, job.file);
  }
  if (values.junit) throw new UsageError('build: --junit is for one profile; each build of several writes its manifest with the results');
  if (typeof values['sign-key'] === 'string') await checkSigningKey(values['sign-key']);
  const passed: string[] = ['-o', String(values.output)];
  for (const flag of ['no-smoke', 'keep-work', 'no-cache', 'verbose'] as const) if (values[flag]) passed.push(`--${flag}`);
  for (const flag of ['accel', 'rebuild-from', 'pool', 'sign-key', 'smoke-firmware'] as const) if (typeof values[flag] === 'string') passed.push(`--${flag}`, values[flag] as string);
  for (const dir of loadOptionsOf(values).allowHostPaths) passed.push('--allow-host-path', dir);
  if (values.backend === 'libvirt' && hosts.length === 0) passed.push('--backend', 'libvirt');
  if (values.backend === 'qemu') passed.push('--backend', 'qemu');
  const started = Date.now();
  const results = await withSignals((signal) => runMatrix(loaded, { jobs, hosts: hosts.length > 0 ? hosts : [undefined], args: passed, signal }));
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out('');
  for (const line of summaryTable(results)) out(line);
  const failed = results.filter((r) => !r.ok).length;
  out(`${results.length - failed} of ${results.length} builds succeeded in ${((Date.now() - started) / 1000).toFixed(0)}s (logs: ${values.output}/logs/<profile>/build.log)`);
  return failed > 0 ? ExitCode.failure : ExitCode.ok;
}

/**
 * --smoke-firmware bios,uefi: smoke under these firmwares only (a CI lane that proves one), each
 * one the image claims (`claimed`, once the profile is loaded). Undefined: every one it claims.
 */
export function smokeFirmwareFlag(value: string | undefined, claimed?: readonly BootFirmware[]): BootFirmware[] | undefined {
  if (value === undefined) return undefined;
  const known = Object.keys(bootFirmwareTitle) as BootFirmware[];
  const asked = [...new Set(value.split(',').map((v) => v.trim()).filter(Boolean))];
  const wrong = asked.find((f) => !known.includes(f as BootFirmware));
  if (wrong !== undefined || asked.length === 0) throw new UsageError(`build: --smoke-firmware takes ${known.join(', ')} (comma-separated), not "${wrong ?? value}"`);
  const unclaimed = claimed ? asked.filter((f) => !claimed.includes(f as BootFirmware)) : [];
  if (unclaimed.length > 0) throw new UsageError(`build: --smoke-firmware ${unclaimed.join(',')}: the profile's image is smoked under ${claimed!.join(', ')} (disk.firmware, disk.secureBoot)`, { hint: 'a boot under a firmware the image does not claim proves nothing about it' });
  return asked as BootFirmware[];
}
