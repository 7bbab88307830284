/**
 * The ZFS builder kernel a native OSv compose boots (osv-zfs-builder.elf):
 * base.builder (a path or URL with its sha256), else the file of that name
 * beside the base image, as Capstan keeps them side by side, checked against
 * a SHA256SUMS there when one lists it. It is a kernel we boot: never unchecked
 * without saying so. Files beside the image are taken only when they really
 * are there: a link out of the image's folder would reach a host file the
 * profile's folder rule (profile/host-paths.ts) never saw.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UserError } from '../../errors.ts';
import { isUnder } from '../../policy/paths.ts';
import type { Step } from '../../log.ts';
import { fetchChecked } from '../../stages/base.ts';
import type { BuildContext } from '../../stages/types.ts';
import { sha256File } from '../../util/fs.ts';

export const builderName = 'osv-zfs-builder.elf';

/** Pure: the sha256 a SHA256SUMS text gives for `name` (either `HASH  name` or `HASH *name`), if any. */
export function sumFor(sums: string, name: string): string | undefined {
  for (const line of sums.split('\n')) {
    const m = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line.trim());
    if (m && (m[2] === name || m[2] === `./${name}`)) return m[1]!.toLowerCase();
  }
  return undefined;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

/** The file `name` in the base image's folder, as a real path, or undefined when there is none; a link out of that folder is refused. */
async function besideImage(imagePath: string, name: string): Promise<string | undefined> {
  const path = join(dirname(imagePath), name);
  const real = await realpath(path).catch(() => undefined);
  if (real === undefined || !(await exists(real))) return undefined;
  const folder = dirname(await realpath(imagePath));
  if (!isUnder(real, folder)) throw new UserError(`${path} is a link out of the base image's folder ${folder}`, { hint: 'name the builder kernel in base.builder (path and sha256) instead' });
  return real;
}

export async function resolveBuilder(ctx: BuildContext, step: Step): Promise<string> {
  const { builder, image } = ctx.profile.base;
  if (builder) return fetchChecked(builder, 'OSv builder kernel', 'base.builder', 'elf', ctx, step);
  const beside = image?.path ? await besideImage(image.path, builderName) : undefined;
  if (!image?.path || !beside) {
    throw new UserError(`a native OSv compose needs OSv's ZFS builder kernel, and ${image?.path ? `${join(dirname(image.path), builderName)} does not exist` : 'base.image is a URL'}`, {
      hint: `set base.builder: { path: .../${builderName}, sha256: ... } (a release loader cannot make a ZFS filesystem), or install capstan`,
    });
  }
  const sumsFile = await besideImage(image.path, 'SHA256SUMS');
  const expected = sumsFile ? sumFor(await readFile(sumsFile, 'utf8'), builderName) : undefined;
  const actual = await sha256File(beside);
  if (expected === undefined) {
    ctx.log.warn(`OSv builder kernel ${beside} is not checked: no SHA256SUMS beside it lists it (set base.builder with its sha256 to pin it)`);
  } else if (actual !== expected) {
    throw new UserError(`sha256 mismatch for ${beside}`, { hint: `expected ${expected} (${sumsFile})\nactual   ${actual}\nno VM was started` });
  }
  return beside;
}
