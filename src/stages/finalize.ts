/**
 * Stage 6: a standalone, compressed image from the overlay chain, its
 * manifest and SHA256SUMS. Everything through temp names and renames; when
 * a later stage (smoke) fails, cleanup removes what this stage published.
 */
import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { convertImage, outputName, toolVersions, updateSums, writeRootfsOutputs, type RootfsFormat } from './outputs.ts';
import { diskUsage } from '../vm/qemu-img.ts';
import type { DiskFormat } from '../model/disk.ts';
import { formatSize } from '../profile/units.ts';
import { guestforgeVersion } from '../util/project.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { redactUrlsIn } from '../util/url.ts';
import type { BuildContext, Stage } from './types.ts';
import { imageVersion, provenanceName, sbomName, writeBuildRecords } from '../publish/records.ts';
import { signSums } from '../publish/sign.ts';
import { manifestTools } from '../host/tools.ts';
import type { SmokeReport } from '../model/smoke.ts';
import { bootChainPackage, firmwareOf } from '../policy/firmware.ts';
import { firmwareSupport } from '../verify/rules.ts';

export function outputFormats(ctx: Pick<BuildContext, 'profile'>): { disks: DiskFormat[]; rootfs: RootfsFormat[] } {
  const all = [...new Set([ctx.profile.disk.format, ...ctx.profile.outputs])];
  return {
    disks: all.filter((f): f is DiskFormat => f === 'qcow2' || f === 'raw' || f === 'vmdk'),
    rootfs: all.filter((f): f is RootfsFormat => f === 'tar' || f === 'squashfs'),
  };
}

function smokeRecord(report: SmokeReport): Record<string, unknown> {
  return {
    ok: report.ok, ...(report.firmware ? { firmware: report.firmware } : {}), bootMs: report.bootMs,
    ...(report.grownToBytes !== undefined ? { grownToBytes: report.grownToBytes } : {}),
    checks: report.checks, ...(report.boot ? { boot: report.boot } : {}),
  };
}

/**
 * Pure: the manifest's firmware record: what the image claims, what verify found on the disk
 * (each firmware with what was seen), whether Secure Boot was required, and the boot chain's
 * packages with their versions.
 */
export function firmwareRecord(ctx: Pick<BuildContext, 'profile' | 'facts'>): Record<string, unknown> {
  const boot = ctx.facts?.boot;
  const chain = [...(ctx.facts?.packages ?? new Map<string, string>())].filter(([name]) => bootChainPackage.test(name)).map(([name, version]) => ({ name, version }));
  return {
    claims: firmwareOf(ctx.profile) ?? null,
    secureBoot: ctx.profile.disk.secureBoot,
    ...(boot ? { bootsUnder: firmwareSupport(boot), partitionTable: boot.table } : {}),
    bootChain: chain.sort((a, b) => a.name.localeCompare(b.name)),
  };
}

export function manifestPath(ctx: BuildContext): string {
  return join(ctx.options.outDir, `${ctx.profile.name}.manifest.json`);
}

async function writeManifest(ctx: BuildContext): Promise<{ tools: Record<string, string>; builtAt: string }> {
  const tools = await toolVersions(manifestTools(Boolean(ctx.profile.base.bootstrap)));
  const builtAt = new Date().toISOString();
  const manifest = {
    name: ctx.profile.name,
    version: imageVersion(ctx),
    guestforge: await guestforgeVersion(),
    builtAt,
    profile: { file: ctx.profileFile, sha256: ctx.profileHash },
    os: ctx.verify?.os,
    // Redacted when made; again here, as the provenance does (baseDependency).
    base: ctx.base && { ...ctx.base, source: redactUrlsIn(ctx.base.source) },
    accel: ctx.accel,
    outputs: ctx.outputs.map((o) => ({ file: basename(o.path), format: o.format, bytes: o.bytes, sha256: o.sha256 })),
    // What the outputs hold, uncompressed: the disk's size and its data (not holes, not zeroes).
    ...(ctx.diskUsage ? { disk: ctx.diskUsage } : {}),
    verify: ctx.verify?.results.map((r) => ({ id: r.id, verdict: r.verdict, evidence: r.evidence })),
    firmware: firmwareRecord(ctx),
    smoke: ctx.smoke ? smokeRecord(ctx.smoke) : undefined,
    // One boot per firmware the image claims (smoke is the first of them).
    ...(ctx.smokes && ctx.smokes.length > 1 ? { smokes: ctx.smokes.map(smokeRecord) } : {}),
    timings: ctx.timings,
    warnings: ctx.warnings,
    packages: ctx.verify?.packages,
    tools,
  };
  await writeFileAtomic(manifestPath(ctx), `${JSON.stringify(manifest, null, 2)}\n`);
  return { tools, builtAt };
}

export const finalizeStage: Stage = {
  name: 'finalize',
  title: 'compress and write outputs',
  describe(profile) {
    const formats = [...new Set([profile.disk.format, ...profile.outputs])];
    return `written by qemu-img convert / guestfish: ${formats.map((f) => outputName(profile.name, f)).join(', ')}${profile.disk.format === 'qcow2' && profile.disk.compress !== 'none' ? ` (${profile.disk.compress})` : ''}, manifest, SHA256SUMS`;
  },
  async run(ctx, step) {
    const { disks, rootfs } = outputFormats(ctx);
    ctx.diskUsage = await diskUsage(ctx.disk!);
    for (const format of disks) {
      const target = join(ctx.options.outDir, outputName(ctx.profile.name, format));
      step.update(`${basename(target)}`);
      const out = await convertImage(ctx.disk!, format, ctx.profile.disk.compress, target, ctx.signal);
      ctx.outputs.push(out);
      ctx.log.info(`wrote ${target} (${formatSize(out.bytes)})`);
    }
    if (rootfs.length > 0) {
      step.update(`root filesystem as ${rootfs.join(', ')} (one guestfish launch)`);
      const targets = { tar: join(ctx.options.outDir, outputName(ctx.profile.name, 'tar')), squashfs: join(ctx.options.outDir, outputName(ctx.profile.name, 'squashfs')) };
      const written = await writeRootfsOutputs(ctx.disk!, rootfs, targets, {
        accel: ctx.accel, inspect: ctx.profile.base.image !== undefined, onRetry: (r) => ctx.log.warn(`${r}; trying once more`),
      });
      for (const out of written) ctx.log.info(`wrote ${out.path} (${formatSize(out.bytes)})`);
      ctx.outputs.push(...written);
    }
    await updateSums(ctx.options.outDir, ctx.outputs);
    await writeManifest(ctx);
    const usage = ctx.diskUsage;
    step.update(`${ctx.outputs.map((o) => `${basename(o.path)} ${formatSize(o.bytes)}`).join(', ')} (data ${formatSize(usage.dataBytes)} of a ${formatSize(usage.virtualBytes)} disk)`);
  },
  async cleanup(ctx, end) {
    // A build that did not succeed, kept or not, takes back what it published: no output may look finished.
    if (end === 'succeeded') return;
    for (const out of ctx.outputs) {
      await rm(out.path, { force: true });
      ctx.log.info(`removed ${out.path}: the build failed after it was written (rerun with --no-smoke to keep an unsmoked image)`);
    }
    await rm(manifestPath(ctx), { force: true });
    // The records too, when a failure came after them (signing): nothing may look finished.
    const records = [sbomName(ctx.profile.name), provenanceName(ctx.profile.name)];
    for (const r of records) await rm(join(ctx.options.outDir, r), { force: true });
    await updateSums(ctx.options.outDir, [], [...ctx.outputs.map((o) => basename(o.path)), basename(manifestPath(ctx)), ...records]);
    ctx.outputs = [];
  },
};

/**
 * After every stage succeeded: the manifest again, now with smoke results and all timings, the
 * SBOM and the provenance, all three listed in SHA256SUMS, which `--sign-key` then signs.
 */
export async function completeManifest(ctx: BuildContext): Promise<void> {
  if (ctx.outputs.length === 0) return;
  const { tools, builtAt } = await writeManifest(ctx);
  const records = await writeBuildRecords(ctx, { tools, finishedOn: builtAt, manifest: manifestPath(ctx) });
  const key = ctx.options.signKey;
  await updateSums(ctx.options.outDir, [...ctx.outputs, ...records], [], key ? async () => ctx.log.info(`signed ${await signSums(ctx.options.outDir, key)}`) : undefined);
}
