/** OSv stages: write the Capstan package, then compose the image (capstan, or natively). */
import { join } from 'node:path';
import { run } from '../../exec/run.ts';
import { writeCpioArchive } from './cpio.ts';
import { composeNative, composeWithCapstan, hasCapstan } from './compose.ts';
import { bootCommand, writePackage } from './package.ts';
import { parseDuration } from '../../profile/units.ts';
import type { Stage } from '../../stages/types.ts';
import { osvOs } from './index.ts';

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
};

export const composeStage: Stage = {
  name: 'compose',
  title: 'compose the OSv image',
  describe(profile) {
    return `capstan package compose when capstan is installed, else boot the base with cpiod and upload a cpio archive; command line "${bootCommand(profile)}"`;
  },
  async run(ctx, step) {
    const { profile } = ctx;
    const { fs } = osvOs(profile);
    if (await hasCapstan()) {
      step.update('capstan package compose');
      const target = join(ctx.workDir, `${profile.name}.qemu`);
      await composeWithCapstan(ctx.packageDir!, profile.name, fs, profile.disk.size, target);
      ctx.disk = { path: target, format: 'qcow2' };
      return;
    }
    if (fs !== 'zfs') {
      const { UserError } = await import('../../errors.ts');
      throw new UserError('composing a ROFS image needs capstan on PATH (guestforge composes ZFS images natively)', {
        hint: 'install capstan, or set os.fs: zfs',
      });
    }
    step.update('raw work disk from the base');
    const disk = join(ctx.workDir, 'osv.raw');
    await run(['qemu-img', 'convert', '-f', ctx.disk!.format, '-O', 'raw', ctx.disk!.path, disk]);
    await run(['qemu-img', 'resize', '-f', 'raw', disk, profile.disk.size]);
    const archive = join(ctx.workDir, 'upload.cpio');
    const names = await writeCpioArchive(ctx.packageDir!, archive, ['meta', 'Capstanfile']);
    step.update(`uploading ${names.length} paths through cpiod`);
    await composeNative({
      disk, archive, cmdline: bootCommand(profile), accel: ctx.accel, workDir: ctx.workDir,
      serialLog: join(ctx.logDir, 'osv-upload-console.log'), timeoutMs: parseDuration(profile.build.timeout),
      log: ctx.log, signal: ctx.signal,
    });
    ctx.disk = { path: disk, format: 'raw' };
  },
};
