/**
 * The build's records beside its image: `<name>.spdx.json` (what the image
 * holds) and `<name>.provenance.json` (how it was made). Written when every
 * stage has succeeded, through temp names; SHA256SUMS then lists them.
 */
import { activeTrims } from '../policy/boot.ts';
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeBackend, type Backend } from '../vm/backend.ts';
import type { Accel } from '../vm/accel.ts';
import type { Profile } from '../profile/schema.ts';
import type { BaseSource, BuildOptions } from '../model/build.ts';
import type { OutputFile } from '../model/disk.ts';
import type { GuestFacts } from '../model/facts.ts';
import type { VerifyReport } from '../model/verify.ts';
import type { SmokeReport } from '../model/smoke.ts';
import { firmwareOf } from '../policy/firmware.ts';
import { firmwareSupport } from '../verify/rules.ts';
import { guestforgeVersion } from '../util/project.ts';
import { sha256File, writeFileAtomic } from '../util/fs.ts';
import { redactUrlsIn } from '../util/url.ts';
import { fileDependency, provenanceStatement, type Dependency } from './provenance.ts';
import { spdxDocument } from './sbom.ts';

/** What the records read of a finished build (the pipeline's BuildContext is one). */
export interface BuildRecordInput {
  readonly profile: Profile;
  readonly profileFile: string;
  readonly profileFiles: readonly string[];
  readonly profileHash: string;
  readonly startedAt: string;
  readonly nonce: string;
  readonly accel: Accel;
  readonly backend: Backend;
  readonly options: Pick<BuildOptions, 'outDir' | 'smoke'>;
  readonly base?: BaseSource;
  readonly outputs: readonly OutputFile[];
  readonly verify?: VerifyReport;
  readonly facts?: Pick<GuestFacts, 'packageSource'> & Partial<Pick<GuestFacts, 'boot'>>;
  /** The smoke boots, one per firmware (the SBOM says which firmwares were proven). */
  readonly smokes?: readonly SmokeReport[];
}

/**
 * Pure: what the SBOM says of the image's firmware: the firmwares verify found it can boot under,
 * its claim, and how Secure Boot stands (proven by a smoke boot under OVMF's Secure Boot build, or
 * not asked for).
 */
export function firmwareComment(ctx: Pick<BuildRecordInput, 'profile' | 'facts' | 'smokes'>): string | undefined {
  const boot = ctx.facts?.boot;
  if (!boot) return undefined;
  const found = firmwareSupport(boot);
  const names = [...(found.bios ? ['BIOS'] : []), ...(found.uefi ? ['UEFI'] : [])];
  const claim = firmwareOf(ctx.profile);
  const secure = ctx.smokes?.find((s) => s.firmware === 'uefi-secure' && s.ok)
    ? 'proven by the smoke boot under OVMF\'s Secure Boot build with Microsoft\'s keys enrolled'
    : ctx.profile.disk.secureBoot ? 'chain signed (verify), not booted (no smoke)' : 'not required';
  return `Boots under ${names.join(' and ') || 'no firmware verify knows'}${claim ? ` (claims ${claim})` : ''}; Secure Boot: ${secure}`;
}

/** The profile's `version`, else the build's UTC start date and the resolved profile's short hash. */
export function imageVersion(ctx: Pick<BuildRecordInput, 'profile' | 'profileHash' | 'startedAt'>): string {
  return ctx.profile.version ?? `${ctx.startedAt.slice(0, 10).replaceAll('-', '')}-${ctx.profileHash.slice(0, 8)}`;
}

export const sbomName = (name: string) => `${name}.spdx.json`;
export const provenanceName = (name: string) => `${name}.provenance.json`;

/**
 * The base as a dependency URI: a URL or local path as given, the bootstrap as its mirror (its
 * suite in the name). Redacted again here, where it leaves for good: a cache entry made by an
 * older guestforge may hold a source that was not.
 */
export function baseDependency(base: BaseSource): Dependency {
  const digest: Record<string, string> = base.sha256 ? { sha256: base.sha256 } : {};
  const source = redactUrlsIn(base.source);
  if (/^https?:\/\//.test(source)) return { name: 'base', uri: source, digest };
  if (source.startsWith('/')) return { name: 'base', uri: pathToFileURL(source).href, digest };
  // Entries cached before the mirror was a field of its own name it only in their description.
  const mirror = base.mirror ? redactUrlsIn(base.mirror) : / from (\S+)$/.exec(source)?.[1];
  return { name: 'base', uri: mirror ?? 'urn:guestforge:bootstrap', digest, annotations: { bootstrap: source } };
}

async function asOutput(path: string, format: string): Promise<OutputFile> {
  return { path, format, bytes: (await stat(path)).size, sha256: await sha256File(path) };
}

export async function writeBuildRecords(
  ctx: BuildRecordInput,
  run: { tools: Record<string, string>; finishedOn: string; manifest: string },
): Promise<OutputFile[]> {
  const { profile } = ctx;
  const version = imageVersion(ctx);
  const gfVersion = await guestforgeVersion();
  const image = ctx.outputs[0]!;
  const outDir = ctx.options.outDir;

  const sbom = spdxDocument({
    name: profile.name,
    version,
    image: { file: basename(image.path), sha256: image.sha256 },
    ...(ctx.verify?.os ? { os: { id: ctx.verify.os.id, version: ctx.verify.os.version } } : {}),
    packageSource: ctx.facts?.packageSource ?? 'none',
    packages: ctx.verify?.packages ?? [],
    // Stubs come with a bootstrap's trims (each trim record names the families it applies to).
    stubs: profile.base.bootstrap
      ? activeTrims(profile).flatMap((t) => (t.bootstrap?.stub ? [{ name: t.bootstrap.stub.name, replaces: t.bootstrap.stub.provides.map((p) => p.name), why: `trim ${t.id}: ${t.why}` }] : []))
      : [],
    created: run.finishedOn,
    guestforgeVersion: gfVersion,
    ...(firmwareComment(ctx) ? { firmware: firmwareComment(ctx)! } : {}),
  });
  const sbomPath = join(outDir, sbomName(profile.name));
  await writeFileAtomic(sbomPath, `${JSON.stringify(sbom, null, 2)}\n`);

  // Every file the build read from the profile's side: the profile and what it extends, app sources, a local base or builder.
  const files = [
    ...ctx.profileFiles.map((f, i) => [f, i === 0 ? 'profile' : 'extends'] as const),
    ...profile.apps.map((a) => [a.src, `app ${a.dest}`] as const),
    ...(profile.base.image?.path ? [[profile.base.image.path, 'base.image'] as const] : []),
    ...(profile.base.builder?.path ? [[profile.base.builder.path, 'base.builder'] as const] : []),
  ];
  const inputs: Dependency[] = [];
  for (const [path, name] of files) inputs.push(await fileDependency(path, name));
  const manifestOut = await asOutput(run.manifest, 'manifest');
  const sbomOut = await asOutput(sbomPath, 'spdx');
  const statement = provenanceStatement({
    name: profile.name,
    version,
    subjects: [...ctx.outputs, sbomOut, manifestOut].map((o) => ({ file: basename(o.path), sha256: o.sha256 })),
    profile: { path: ctx.profileFile, sha256: inputs[0]?.digest.sha256 ?? '' },
    inputs,
    ...(ctx.base ? { base: baseDependency(ctx.base) } : {}),
    guestforgeVersion: gfVersion,
    tools: run.tools,
    accel: ctx.accel,
    backend: describeBackend(ctx.backend),
    smoke: ctx.options.smoke,
    buildId: ctx.nonce,
    startedOn: ctx.startedAt,
    finishedOn: run.finishedOn,
  });
  const provenancePath = join(outDir, provenanceName(profile.name));
  await writeFileAtomic(provenancePath, `${JSON.stringify(statement, null, 2)}\n`);
  return [manifestOut, sbomOut, await asOutput(provenancePath, 'provenance')];
}
