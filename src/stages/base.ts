/**
 * Stage 1: the disk every later stage starts from. Either an existing image
 * (local or downloaded, always checked against its sha256 before any VM
 * sees it) or a Debian bootstrap. Both land in the cache and are only ever
 * used read-only, as the backing file of the next stage's overlay.
 */
import { imageInfo } from '../vm/image.ts';
import { redactUrl, redactUrlsIn } from '../util/url.ts';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage, UserError } from '../errors.ts';
import type { Step } from '../log.ts';
import { formatSize } from '../profile/units.ts';
import { sha256File, tempPathFor } from '../util/fs.ts';
import type { BuildContext, Stage } from './types.ts';
import type { DiskRef } from '../model/disk.ts';
import { removeWorkFiles } from './cleanup.ts';

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Bootstraps into the work folder; the pipeline moves the disk into the stage cache. */
async function useBootstrap(ctx: BuildContext, step: Step): Promise<DiskRef> {
  if (!ctx.driver.bootstrap) throw new UserError(`${ctx.driver.title} guests cannot be bootstrapped`, { hint: 'use base.image' });
  const path = join(ctx.workDir, 'base.qcow2');
  const { source, mirror } = await ctx.driver.bootstrap(ctx, step, path);
  ctx.base = { source, ...(mirror ? { mirror } : {}), cached: false, sha256: await sha256File(path) };
  return { path, format: 'qcow2' };
}

export async function download(url: string, target: string, step: Step, signal: AbortSignal): Promise<void> {
  const temp = tempPathFor(target);
  try {
    const response = await fetch(url, { signal });
    if (!response.ok || !response.body) {
      throw new UserError(`download failed: ${redactUrl(url)}: HTTP ${response.status} ${response.statusText}`, {
        hint: 'check the URL in base.image.url, or download it yourself and use base.image.path',
      });
    }
    const total = Number(response.headers.get('content-length') ?? 0);
    let got = 0;
    const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream);
    body.on('data', (chunk: Buffer) => {
      got += chunk.length;
      step.update(`download ${formatSize(got)}${total ? ` of ${formatSize(total)}` : ''}`);
    });
    await pipeline(body, createWriteStream(temp));
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    if (error instanceof UserError) throw error;
    // No cause: fetch's own messages may carry the URL whole (one with user:password@ is refused with it).
    throw new UserError(`download failed: ${redactUrl(url)}: ${redactUrlsIn(errorMessage(error))}`);
  }
}

function checksumError(what: string, field: string, expected: string, actual: string): UserError {
  return new UserError(`sha256 mismatch for ${what}`, {
    hint: `expected ${expected.toLowerCase()} (${field})\nactual   ${actual}\nno VM was started; fix the profile or the file`,
  });
}

/**
 * A pinned input file (`path` or `url`, plus `sha256`): the local file, or the download kept in
 * the cache under its sha256, checked before anything uses it. `field` names the profile field
 * (base.image, base.builder) and `what` the file in errors; `ext` is the cached download's extension.
 */
export async function fetchChecked(pin: { path?: string; url?: string; sha256: string }, what: string, field: string, ext: string, ctx: BuildContext, step: Step): Promise<string> {
  const expected = pin.sha256.toLowerCase();
  if (pin.path !== undefined) {
    if (!(await exists(pin.path))) throw new UserError(`${what} not found: ${pin.path}`, { hint: `${field}.path is relative to the profile that names it` });
    step.update(`sha256 ${pin.path}`);
    const actual = await sha256File(pin.path);
    if (actual !== expected) throw checksumError(pin.path, `${field}.sha256`, expected, actual);
    return pin.path;
  }
  const dir = join(ctx.cacheDir, 'downloads');
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${expected}.${ext}`);
  if (!(await exists(path))) await download(pin.url!, path, step, ctx.signal);
  step.update('sha256');
  const actual = await sha256File(path);
  if (actual !== expected) {
    await rm(path, { force: true });
    throw checksumError(redactUrl(pin.url!), `${field}.sha256`, expected, actual);
  }
  return path;
}

async function useImage(ctx: BuildContext, step: Step): Promise<DiskRef> {
  const image = ctx.profile.base.image!;
  const expected = image.sha256.toLowerCase();
  const path = await fetchChecked(image, 'base image', 'base.image', image.format, ctx, step);
  const info = await imageInfo(path);
  // The sha256 pins this one file: a backing file would bring content it does not cover.
  if (info.backing || info.dataFile) throw new UserError(`base image ${path} has a ${info.backing ? `backing file (${info.backingRaw})` : `data file (${info.dataFile})`}`, { hint: 'use a standalone image: qemu-img convert -O qcow2 in out' });
  if (info.format !== image.format) {
    throw new UserError(`base image ${path} is ${info.format}, but base.image.format says ${image.format}`, {
      hint: `set base.image.format: ${info.format}`,
    });
  }
  ctx.base = { source: image.url ? redactUrl(image.url) : image.path!, sha256: expected, cached: image.url !== undefined };
  return { path, format: image.format };
}

export const baseStage: Stage = {
  name: 'base',
  title: 'base disk',
  describe(profile) {
    const { image, bootstrap } = profile.base;
    if (bootstrap) return `mmdebstrap ${bootstrap.suite} (${bootstrap.variant}) → ext4 via mke2fs -d → GRUB in one guestfish launch (cached by inputs)`;
    return `${image?.url ? `download ${redactUrl(image.url)}` : `use ${image?.path}`}, check sha256 ${image?.sha256.slice(0, 12)}…`;
  },
  cache: {
    async inputs({ profile, driver }) {
      if (!profile.base.bootstrap || !driver.bootstrapKey) return undefined;
      return { bootstrap: await driver.bootstrapKey(profile) };
    },
    // An image is named by its checked sha256, so the stages on it are cached too.
    identity({ profile }) {
      const sha = profile.base.image?.sha256.toLowerCase();
      return sha ? { key: sha.slice(0, 16), id: sha } : undefined;
    },
    save: (ctx) => ctx.base,
    restore(ctx, data) {
      ctx.base = { ...(data as NonNullable<BuildContext['base']>), cached: true };
    },
  },
  async run(ctx, step) {
    ctx.disk = ctx.profile.base.image ? await useImage(ctx, step) : await useBootstrap(ctx, step);
    step.update(ctx.base?.source ?? ctx.disk.path);
  },
  async cleanup(ctx, end) {
    // The bootstrapped disk (the pipeline moves it into the cache when it is cached); an image is only read.
    await removeWorkFiles(ctx, end, 'base.qcow2');
  },
};
