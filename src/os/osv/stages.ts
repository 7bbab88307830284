/** OSv stages: write the Capstan package, then compose the image (capstan, or natively). */
import { join } from 'node:path';
import { writeCpioArchive } from './cpio.ts';
import { composeNative, composeWithCapstan, hasCapstan } from './compose.ts';
import { bootCommand, packageDir, writePackage } from './package.ts';
import { rm, stat } from 'node:fs/promises';
import { UserError } from '../../errors.ts';
import { parseDuration, parseSize } from '../../profile/units.ts';
import { resolveBuilder } from './builder.ts';
import type { Stage } from '../../stages/types.ts';
import { osvOs } from './index.ts';
import { removeWorkFiles } from '../../stages/cleanup.ts';

export const packageStage: Stage = {
  name: 'package',
  title: 'Capstan package',
  describe(profile) {
    return `meta/package.yaml, meta/run.yaml, Capstanfile and ${profile.apps.length} app path(s) under <out>/${profile.name}/`;
  },
  async run(ctx, step) {
    ctx.packageDir = await writePackage(ctx.profile, ctx.options.outDir);
    ctx.log.info(`Capstan package: ${ctx.packageDir}`);
    step.update(ctx.packageDir);
  },
  async cleanup(ctx, end) {
    // The package is an output (--package-only stops here): it goes when the build did not
    // succeed, unless the build is kept, whose resume composes from it.
    if (end === 'succeeded' || end === 'kept' || !ctx.packageDir) return;
    await rm(ctx.packageDir, { recursive: true, force: true });
    ctx.log.info(`removed ${ctx.packageDir}: the build did not finish`);
    ctx.packageDir = undefined;
  },
};

export const composeStage: Stage = {
  name: 'compose',
  title: 'compose the OSv image',
  describe(profile) {
    return `capstan package compose when capstan is installed, else the base's loader plus a fresh ZFS partition, OSv's ZFS builder kernel booted on it to receive a cpio archive; command line "${bootCommand(profile)}"`;
  },
  async run(ctx, step) {
    const { profile } = ctx;
    const { fs } = osvOs(profile);
    // A resumed build did not run the package stage: its package is where -o puts it (kept.json names no folder).
    const pkg = ctx.packageDir ?? packageDir(ctx.options.outDir, profile);
    if (!(await stat(pkg).then((s) => s.isDirectory(), () => false))) {
      throw new UserError(`no Capstan package at ${pkg}`, { hint: 'resume with the -o the build had (its package stage wrote the package there), or build again' });
    }
    if (await hasCapstan()) {
      step.update('capstan package compose');
      const target = join(ctx.workDir, `${profile.name}.qemu`);
      await composeWithCapstan(pkg, profile.name, fs, profile.disk.size, target);
      ctx.disk = { path: target, format: 'qcow2' };
      return;
    }
    if (fs !== 'zfs') {
      throw new UserError('composing a ROFS image needs capstan on PATH (guestforge composes ZFS images natively)', {
        hint: 'install capstan, or set os.fs: zfs',
      });
    }
    const builder = await resolveBuilder(ctx, step);
    const disk = join(ctx.workDir, 'osv.raw');
    const archive = join(ctx.workDir, 'upload.cpio');
    const names = await writeCpioArchive(pkg, archive, ['meta', 'Capstanfile']);
    step.update(`ZFS builder kernel: mkfs, then ${names.length} paths through cpiod`);
    const layout = await composeNative({
      base: ctx.disk!, builder, disk, diskBytes: parseSize(profile.disk.size), archive, cmdline: bootCommand(profile),
      accel: ctx.accel, workDir: ctx.workDir, serialLog: join(ctx.logDir, 'osv-builder-console.log'),
      timeoutMs: parseDuration(profile.build.timeout), log: ctx.log, signal: ctx.signal,
    });
    step.update(`loader ${Math.round(layout.loaderBytes / 1024)} KiB + ZFS ${Math.round(layout.partitionBytes / 1024 / 1024)} MiB; ${names.length} paths`);
    ctx.disk = { path: disk, format: 'raw' };
  },
  async cleanup(ctx, end) {
    await removeWorkFiles(ctx, end, `${ctx.profile.name}.qemu`, 'osv.raw', 'upload.cpio');
  },
};
