import { resolve } from 'node:path';
import { ExitCode, UsageError } from '../errors.ts';
import { publish } from '../publish/publish.ts';
import { withSignals } from '../pipeline/signals.ts';
import { parseCommandArgs } from './args.ts';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('publish', args, { to: { type: 'string' }, keep: { type: 'string' } });
  if (positionals.length !== 1 || !values.to) throw new UsageError('publish: name one image and --to', { hint: 'guestforge publish out/debian-12-hpc.qcow2 --to /srv/vm-images --keep 3' });
  const keep = values.keep === undefined ? undefined : Number(values.keep);
  // An interruption lets the copy's finally remove its temp folder (a later publish sweeps what a kill left).
  const r = await withSignals(() => publish(resolve(positionals[0]!), resolve(values.to!), keep === undefined ? {} : { keep }));
  process.stdout.write(`published ${r.folder}: ${r.files.join(', ')}\n`);
  if (!r.signatureCopied) process.stdout.write(`not signed there: sign it with guestforge sign ${r.folder} --key KEY (a build's own signature is copied only when its SHA256SUMS lists exactly these files)\n`);
  for (const v of r.removed) process.stdout.write(`removed old version ${v}\n`);
  return ExitCode.ok;
}
