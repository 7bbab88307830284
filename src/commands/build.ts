import { ExitCode, UsageError } from '../errors.ts';
import { Logger } from '../log.ts';
import { loadProfileOrThrow } from '../profile/index.ts';
import { formatSize } from '../profile/units.ts';
import { writeJunit } from '../report/junit.ts';
import { runBuild } from '../build/pipeline.ts';
import { withSignals } from '../build/signals.ts';
import { smokeJunitCases } from '../smoke/run.ts';
import { junitCases } from '../verify/print.ts';
import { parseCommandArgs } from './args.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('build', args, {
    output: { type: 'string', short: 'o', default: 'out' },
    'no-smoke': { type: 'boolean' },
    junit: { type: 'string' },
    'keep-work': { type: 'boolean' },
    'no-cache': { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
    accel: { type: 'string' },
    'package-only': { type: 'boolean' },
  });
  const [file] = positionals;
  if (!file || positionals.length > 1) throw new UsageError('build: name one profile', { hint: 'guestforge build profiles/debian-12-hpc.yaml -o out/' });
  const accel = values.accel;
  if (accel !== undefined && accel !== 'auto' && accel !== 'kvm' && accel !== 'tcg') {
    throw new UsageError(`build: --accel must be auto, kvm or tcg, not "${accel}"`);
  }
  const loaded = await loadProfileOrThrow(file);
  const log = new Logger({ verbose: Boolean(values.verbose) });
  const started = Date.now();
  // runBuild returns stage failures with the context (for JUnit); withSignals turns an interruption into exit 130/143.
  const { ctx, error } = await withSignals((signal) => runBuild(loaded, {
    outDir: values.output,
    smoke: !values['no-smoke'],
    keepWork: Boolean(values['keep-work']),
    verbose: Boolean(values.verbose),
    noCache: Boolean(values['no-cache']),
    packageOnly: Boolean(values['package-only']),
    ...(values.junit ? { junit: values.junit } : {}),
    ...(accel ? { accel } : {}),
  }, log, signal));

  if (values.junit && (ctx.verify || ctx.smoke)) {
    await writeJunit(values.junit, `guestforge build ${loaded.profile.name}`, [
      ...(ctx.verify ? junitCases(ctx.verify) : []),
      ...(ctx.smoke ? smokeJunitCases(ctx.smoke) : []),
    ]);
  }
  if (error) throw error;
  const out = (s: string) => process.stdout.write(`${s}\n`);
  for (const w of ctx.warnings) out(`warning: ${w}`);
  if (ctx.packageDir) out(`Capstan package: ${ctx.packageDir}`);
  for (const o of ctx.outputs) out(`${o.path}  ${formatSize(o.bytes)}  sha256 ${o.sha256.slice(0, 16)}…`);
  out(`stages: ${ctx.timings.map((t) => `${t.stage} ${(t.ms / 1000).toFixed(0)}s`).join(' · ')} · total ${((Date.now() - started) / 1000).toFixed(0)}s`);
  if (ctx.outputs.length > 0) out(`manifest: ${ctx.options.outDir}/${loaded.profile.name}.manifest.json · logs: ${ctx.logDir}${ctx.smoke ? '' : ' · smoke skipped'}`);
  return ExitCode.ok;
}
