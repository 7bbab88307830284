/**
 * Publishing a built image to the cluster's image share, the way vTorque
 * reads images from its VM_IMG_DIR: DIR/<name>/<version>/ holds the image,
 * its manifest, SBOM, provenance and a SHA256SUMS of exactly those files;
 * DIR/<name>/current points at the newest. A version folder is made under a
 * temp name and renamed into place, so nodes never see half of one; a
 * version already published is never overwritten; --keep N removes the
 * oldest versions (never the current one), each renamed away before it is
 * deleted.
 */
import { constants } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UsageError, UserError } from '../errors.ts';
import { nonce, sha256File } from '../util/fs.ts';
import { provenanceName, sbomName } from './records.ts';
import { parseSums, signatureFile, sumsFile } from './sign.ts';

export interface BuiltImage {
  image: string;
  name: string;
  version: string;
  sha256: string;
  builtAt: string;
  /** The image, then manifest, SBOM and provenance as far as they exist. */
  files: string[];
}

const versionPattern = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/** The image and the records its build wrote beside it, checked against its manifest. */
export async function builtImage(image: string): Promise<BuiltImage> {
  const st = await stat(image).catch(() => undefined);
  if (!st?.isFile()) throw new UsageError(`${image}: no such file`);
  const dir = dirname(image);
  const file = basename(image);
  // The manifest that lists this file among its outputs.
  const manifests = (await readdir(dir)).filter((f) => f.endsWith('.manifest.json'));
  let manifest: { name?: string; version?: string; builtAt?: string; outputs?: { file: string; sha256: string }[] } | undefined;
  let manifestPath = '';
  for (const m of manifests) {
    const data = JSON.parse(await readFile(join(dir, m), 'utf8').catch(() => '{}')) as typeof manifest;
    if (data?.outputs?.some((o) => o.file === file)) {
      manifest = data;
      manifestPath = join(dir, m);
      break;
    }
  }
  if (!manifest?.name) throw new UsageError(`${image}: no manifest in ${dir} lists it`, { hint: 'publish and push take an image a guestforge build wrote, with its <name>.manifest.json beside it' });
  // Both become path components and tags: a manifest from elsewhere is not trusted with them.
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(manifest.name) || /^\.+$/.test(manifest.name)) throw new UsageError(`${manifestPath}: name ${JSON.stringify(manifest.name).slice(0, 80)} is not a profile name`);
  if (!manifest.version || !versionPattern.test(manifest.version)) {
    throw new UsageError(`${manifestPath}: no usable version`, { hint: 'a build by this guestforge writes one (profile `version:`, default the build date and profile hash): rebuild' });
  }
  const expected = manifest.outputs!.find((o) => o.file === file)!.sha256;
  const sha256 = await sha256File(image);
  if (sha256 !== expected) throw new UserError(`${image}: its sha256 is not the one ${basename(manifestPath)} records: it changed since the build`);
  const files = [image, manifestPath];
  for (const extra of [sbomName(manifest.name), provenanceName(manifest.name)]) {
    if ((await stat(join(dir, extra)).catch(() => undefined))?.isFile()) files.push(join(dir, extra));
  }
  return { image, name: manifest.name, version: manifest.version, sha256, builtAt: manifest.builtAt ?? '', files };
}

export interface PublishResult {
  folder: string;
  files: string[];
  signatureCopied: boolean;
  removed: string[];
}

/** Versions published under DIR/<name>, oldest first (by the builtAt of each one's manifest, then name). */
async function versions(nameDir: string): Promise<{ version: string; builtAt: string }[]> {
  const out: { version: string; builtAt: string }[] = [];
  for (const entry of await readdir(nameDir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.') || !versionPattern.test(entry.name)) continue;
    const manifests = (await readdir(join(nameDir, entry.name))).filter((f) => f.endsWith('.manifest.json'));
    const builtAt = manifests[0] ? ((JSON.parse(await readFile(join(nameDir, entry.name, manifests[0]), 'utf8').catch(() => '{}')) as { builtAt?: string }).builtAt ?? '') : '';
    out.push({ version: entry.name, builtAt });
  }
  return out.sort((a, b) => a.builtAt.localeCompare(b.builtAt) || a.version.localeCompare(b.version));
}

export async function publish(image: string, to: string, options: { keep?: number } = {}): Promise<PublishResult> {
  if (options.keep !== undefined && (!Number.isInteger(options.keep) || options.keep < 1)) throw new UsageError(`publish: --keep must be a whole number of at least 1, not ${options.keep}`);
  const built = await builtImage(image);
  if (!(await stat(to).catch(() => undefined))?.isDirectory()) throw new UsageError(`--to ${to}: not a folder`, { hint: 'the image share must exist' });
  const nameDir = join(to, built.name);
  await mkdir(nameDir, { recursive: true, mode: 0o755 });
  if (!(await lstat(nameDir)).isDirectory()) throw new UsageError(`${nameDir}: is not a folder (a link or a file there is not written through)`);
  const final = join(nameDir, built.version);
  if (await lstat(final).catch(() => undefined)) {
    throw new UserError(`${built.name} ${built.version} is already published in ${final}: nothing was changed`, { hint: 'a published version is never overwritten: set a new `version:` in the profile and rebuild' });
  }
  const temp = join(nameDir, `.${built.version}.tmp-${process.pid}-${nonce(3)}`);
  const copied: string[] = [];
  let signatureCopied = false;
  try {
    await mkdir(temp, { mode: 0o755 });
    const sums: string[] = [];
    for (const f of built.files) {
      const target = join(temp, basename(f));
      await copyFile(f, target, constants.COPYFILE_FICLONE);
      await chmod(target, 0o644);
      const sha = await sha256File(target);
      if (f === built.image && sha !== built.sha256) throw new UserError(`${target}: the copy's sha256 differs from the image's`);
      sums.push(`${sha}  ${basename(f)}`);
      copied.push(basename(f));
    }
    sums.sort((a, b) => a.slice(66).localeCompare(b.slice(66)));
    // The build's signature still holds when its SHA256SUMS lists exactly these files with these sums.
    const outSums = join(dirname(built.image), sumsFile);
    const outSig = join(dirname(built.image), signatureFile);
    const original = await readFile(outSums, 'utf8').catch(() => undefined);
    if (original !== undefined && (await stat(outSig).catch(() => undefined))?.isFile()) {
      const listed = parseSums(original, outSums).map((l) => `${l.sha256}  ${l.file}`).sort((a, b) => a.slice(66).localeCompare(b.slice(66)));
      if (listed.join('\n') === sums.join('\n')) {
        await writeFile(join(temp, sumsFile), original, { mode: 0o644 });
        await copyFile(outSig, join(temp, signatureFile));
        await chmod(join(temp, signatureFile), 0o644);
        signatureCopied = true;
      }
    }
    if (!signatureCopied) await writeFile(join(temp, sumsFile), `${sums.join('\n')}\n`, { mode: 0o644 });
    copied.push(sumsFile, ...(signatureCopied ? [signatureFile] : []));
    try {
      await rename(temp, final);
    } catch (error) {
      // Another publish of the same version won the race: theirs stays, ours goes.
      if ((error as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new UserError(`${built.name} ${built.version} was published in ${final} meanwhile: nothing was changed`);
      }
      throw error;
    }
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
  // current → the version just published, replaced in one rename.
  const link = join(nameDir, 'current');
  const linkTemp = join(nameDir, `.current.tmp-${process.pid}-${nonce(3)}`);
  await symlink(built.version, linkTemp);
  await rename(linkTemp, link);

  const removed: string[] = [];
  if (options.keep !== undefined) {
    const current = await readlink(link).catch(() => built.version);
    const all = await versions(nameDir);
    const excess = all.filter((v) => v.version !== current).slice(0, Math.max(0, all.length - options.keep));
    for (const { version } of excess) {
      const gone = join(nameDir, `.${version}.removing-${process.pid}-${nonce(3)}`);
      await rename(join(nameDir, version), gone);
      await rm(gone, { recursive: true, force: true });
      removed.push(version);
    }
  }
  return { folder: final, files: copied, signatureCopied, removed };
}
