import { resolve } from 'node:path';
import { ExitCode, UsageError } from '../errors.ts';
import { verifySignature } from '../publish/sign.ts';
import { parseCommandArgs } from './args.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('verify-signature', args, { pubkey: { type: 'string', short: 'p' }, json: { type: 'boolean' } });
  if (positionals.length !== 1 || !values.pubkey) throw new UsageError('verify-signature: name one folder and --pubkey', { hint: 'guestforge verify-signature out/ --pubkey signer.asc' });
  const dir = resolve(positionals[0]!);
  const check = await verifySignature(dir, resolve(values.pubkey));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(check, null, 2)}\n`);
  } else {
    process.stdout.write(check.signatureProblem ? `FAIL  SHA256SUMS.asc  ${check.signatureProblem}\n` : `OK    SHA256SUMS.asc  good signature by ${check.signer}\n`);
    for (const f of check.files) process.stdout.write(`${f.status === 'ok' ? 'OK  ' : 'FAIL'}  ${f.file}${f.status === 'ok' ? '' : `  ${f.status === 'missing' ? 'missing' : 'its sha256 is not the one SHA256SUMS lists: changed after signing'}`}\n`);
  }
  if (!check.ok) {
    const wrong = check.files.filter((f) => f.status !== 'ok').map((f) => `${f.file} (${f.status})`);
    process.stderr.write(`verify-signature: ${[check.signatureProblem, wrong.length ? `wrong: ${wrong.join(', ')}` : undefined].filter(Boolean).join('; ')}\n`);
    return ExitCode.failure;
  }
  return ExitCode.ok;
}
