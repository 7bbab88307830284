import { resolve } from 'node:path';
import { ExitCode, UsageError } from '../errors.ts';
import { signSums } from '../publish/sign.ts';
import { parseCommandArgs } from './args.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('sign', args, { key: { type: 'string', short: 'k' } });
  if (positionals.length !== 1 || !values.key) throw new UsageError('sign: name one output folder and --key', { hint: 'guestforge sign out/ --key admin@cluster.example' });
  process.stdout.write(`${await signSums(resolve(positionals[0]!), values.key)}\n`);
  return ExitCode.ok;
}
