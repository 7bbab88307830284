import { ExitCode, UsageError } from '../errors.ts';
import { formatDiagnostic } from '../profile/diagnostic.ts';
import { loadProfile } from '../loader/profile.ts';
import { allowHostPathOption, loadOptionsOf, parseCommandArgs } from './args.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('validate', args, { ...allowHostPathOption });
  if (positionals.length === 0) throw new UsageError('validate: name at least one profile', { hint: 'guestforge validate profiles/*.yaml' });
  let failed = 0;
  for (const file of positionals) {
    const result = await loadProfile(file, loadOptionsOf(values));
    if (result.ok) {
      process.stdout.write(`${file}: ok\n`);
    } else {
      failed += 1;
      for (const d of result.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    }
  }
  if (failed > 0) process.stderr.write(`${failed} of ${positionals.length} profile(s) invalid\n`);
  return failed > 0 ? ExitCode.usage : ExitCode.ok;
}
