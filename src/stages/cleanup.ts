/** What the stages' cleanups share: the work-folder files a run made go, unless the build is kept. */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuildEnd } from '../model/build.ts';

/** A kept build's record points at its work folder's disks (resume, shell): they stay then. */
export async function removeWorkFiles(ctx: { readonly workDir: string }, end: BuildEnd, ...names: string[]): Promise<void> {
  if (end === 'kept') return;
  for (const name of names) await rm(join(ctx.workDir, name), { recursive: true, force: true });
}
