/** What the stages' cleanups share: the work-folder files a run made go, unless the build is kept. */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuildEnd } from '../model/build.ts';

/**
 * A kept build's record points at its work folder's disks (resume, shell): they stay then; so do
 * they with --keep-work, which keeps the work folder for a look at what each stage made.
 */
export async function removeWorkFiles(ctx: { readonly workDir: string; readonly options: { readonly keepWork?: boolean } }, end: BuildEnd, ...names: string[]): Promise<void> {
  if (end === 'kept' || ctx.options.keepWork) return;
  for (const name of names) await rm(join(ctx.workDir, name), { recursive: true, force: true });
}
