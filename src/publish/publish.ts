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
import { ensureTrustedDir } from '../util/trusted-path.ts';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, readFile, readlink, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { acquireLock, pidAlive } from '../exec/lock.ts';
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
const namePattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Names the share uses itself. */
const reserved = new Set(['current']);

/** A regular file, never a link: files found beside an image are not trusted to point elsewhere. */
async function isRegular(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined))?.isFile() ?? false;
}

/** JSON of a file beside the image, or undefined when it is no JSON object. */
async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  if (!(await isRegular(path))) return undefined;
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Copies a regular file without following a link at `src` (opened O_NOFOLLOW). */
export async function copyRegular(src: string, dst: string, mode = 0o644): Promise<void> {
  const handle = await open(src, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    if (!(await handle.stat()).isFile()) throw new UserError(`${src}: not a regular file`);
    await pipeline(createReadStream('', { fd: handle.fd, autoClose: false }), createWriteStream(dst, { mode, flags: 'wx' }));
  } finally {
    await handle.close();
  }
  await chmod(dst, mode);
}

/** The image and the records its build wrote beside it, checked against its manifest and provenance. */
export async function builtImage(given: string): Promise<BuiltImage> {
  const image = await realpath(given).catch(() => undefined);
  if (!image || !(await stat(image)).isFile()) throw new UsageError(`${given}: no such file`);
  const dir = dirname(image);
  const file = basename(image);
  // The manifest that lists this file among its outputs.
  let manifest: { name: string; version: string; builtAt: string; sha256: string } | undefined;
  let manifestPath = '';
  for (const m of (await readdir(dir)).filter((f) => f.endsWith('.manifest.json')).sort()) {
    const data = await readJson(join(dir, m));
    const outputs = Array.isArray(data?.outputs) ? (data.outputs as unknown[]) : [];
    const entry = outputs.find((o): o is { file: string; sha256: string } => typeof o === 'object' && o !== null && (o as { file?: unknown }).file === file && typeof (o as { sha256?: unknown }).sha256 === 'string');
    if (!entry) continue;
    manifestPath = join(dir, m);
    const name = data!.name;
    const version = data!.version;
    // Both become path components and tags: a manifest from elsewhere is not trusted with them.
    if (typeof name !== 'string' || !namePattern.test(name)) throw new UsageError(`${manifestPath}: its name is not a profile name`);
    if (typeof version !== 'string' || !versionPattern.test(version) || reserved.has(version)) {
      throw new UsageError(`${manifestPath}: no usable version`, { hint: 'a build by this guestforge writes one (profile `version:`, default the build date and profile hash): rebuild' });
    }
    const builtAt = typeof data!.builtAt === 'string' && !Number.isNaN(Date.parse(data!.builtAt)) ? data!.builtAt : '';
    manifest = { name, version, builtAt, sha256: entry.sha256 };
    break;
  }
  if (!manifest) throw new UsageError(`${given}: no manifest in ${dir} lists it`, { hint: 'publish and push take an image a guestforge build wrote, with its <name>.manifest.json beside it' });
  const sha256 = await sha256File(image);
  if (sha256 !== manifest.sha256) throw new UserError(`${image}: its sha256 is not the one ${basename(manifestPath)} records: it changed since the build`);
  const files = [image, manifestPath];
  const sbom = join(dir, sbomName(manifest.name));
  const provenance = join(dir, provenanceName(manifest.name));
  for (const f of [sbom, provenance, join(dir, signatureFile), join(dir, sumsFile)]) {
    const st = await lstat(f).catch(() => undefined);
    if (st && !st.isFile()) throw new UserError(`${f}: not a regular file (a link?): refused, nothing beside an image may point elsewhere`);
  }
  if (await isRegular(provenance)) {
    // The records count only when the provenance names this image and SBOM (and the manifest) with their sums.
    const subjects = (await readJson(provenance))?.subject;
    const digests = new Map((Array.isArray(subjects) ? subjects : []).map((x: { name?: unknown; digest?: { sha256?: unknown } }) => [String(x?.name), String(x?.digest?.sha256)]));
    const checks: [string, string][] = [[file, sha256], [basename(manifestPath), await sha256File(manifestPath)]];
    if (await isRegular(sbom)) checks.push([basename(sbom), await sha256File(sbom)]);
    const wrong = checks.filter(([f, sum]) => digests.get(f) !== sum).map(([f]) => f);
    if (wrong.length) throw new UserError(`${provenance} does not vouch for ${wrong.join(', ')}: the records beside the image are not this build's`);
    if (await isRegular(sbom)) files.push(sbom);
    files.push(provenance);
  } else if (await isRegular(sbom)) {
    files.push(sbom);
  }
  return { image, name: manifest.name, version: manifest.version, sha256, builtAt: manifest.builtAt, files };
}

export interface PublishResult {
  folder: string;
  files: string[];
  signatureCopied: boolean;
  removed: string[];
}

/** Versions published under DIR/<name>, oldest first: folders holding a manifest of that name and version (nothing else is touched). */
async function versions(nameDir: string, name: string): Promise<{ version: string; builtAt: string }[]> {
  const out: { version: string; builtAt: string }[] = [];
  for (const entry of await readdir(nameDir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !versionPattern.test(entry.name) || reserved.has(entry.name)) continue;
    const m = await readJson(join(nameDir, entry.name, `${name}.manifest.json`));
    if (m?.name !== name || m?.version !== entry.name) continue;
    out.push({ version: entry.name, builtAt: typeof m.builtAt === 'string' ? m.builtAt : '' });
  }
  return out.sort((a, b) => a.builtAt.localeCompare(b.builtAt) || a.version.localeCompare(b.version));
}

export async function publish(image: string, to: string, options: { keep?: number } = {}): Promise<PublishResult> {
  if (options.keep !== undefined && (!Number.isInteger(options.keep) || options.keep < 1)) throw new UsageError(`publish: --keep must be a whole number of at least 1, not ${options.keep}`);
  const built = await builtImage(image);
  if (!(await stat(to).catch(() => undefined))?.isDirectory()) throw new UsageError(`--to ${to}: not a folder`, { hint: 'the image share must exist' });
  await ensureTrustedDir(to, `--to ${to}`);
  const nameDir = join(to, built.name);
  await mkdir(nameDir, { recursive: true, mode: 0o755 });
  if (!(await lstat(nameDir)).isDirectory()) throw new UsageError(`${nameDir}: is not a folder (a link or a file there is not written through)`);
  // What an interrupted publish left (its process is gone): temp folders, a half-made link.
  for (const entry of await readdir(nameDir)) {
    const pid = /^\..+\.(?:tmp|removing)-(\d+)-[0-9a-f]+$/.exec(entry)?.[1];
    if (pid && !pidAlive(Number(pid))) await rm(join(nameDir, entry), { recursive: true, force: true });
  }
  const final = join(nameDir, built.version);
  if (await lstat(final).catch(() => undefined)) {
    throw new UserError(`${built.name} ${built.version} is already published in ${final}: nothing was changed`, { hint: 'a published version is never overwritten: set a new `version:` in the profile and rebuild' });
  }
  const temp = join(nameDir, `.${built.version}.tmp-${process.pid}-${nonce(3)}`);
  const copied: string[] = [];
  const removed: string[] = [];
  let signatureCopied = false;
  try {
    await mkdir(temp, { mode: 0o755 });
    const sums: string[] = [];
    for (const f of built.files) {
      const target = join(temp, basename(f));
      await copyRegular(f, target);
      const sha = await sha256File(target);
      if (f === built.image && sha !== built.sha256) throw new UserError(`${target}: the copy's sha256 differs from the image's`);
      sums.push(`${sha}  ${basename(f)}`);
      copied.push(basename(f));
    }
    sums.sort((a, b) => a.slice(66).localeCompare(b.slice(66)));
    // The build's signature still holds when its SHA256SUMS lists exactly these files with these sums.
    const outSums = join(dirname(built.image), sumsFile);
    const outSig = join(dirname(built.image), signatureFile);
    const original = (await isRegular(outSums)) ? await readFile(outSums, 'utf8') : undefined;
    if (original !== undefined && (await isRegular(outSig))) {
      const listed = parseSums(original, outSums).map((l) => `${l.sha256}  ${l.file}`).sort((a, b) => a.slice(66).localeCompare(b.slice(66)));
      if (listed.join('\n') === sums.join('\n')) {
        await writeFile(join(temp, sumsFile), original, { mode: 0o644 });
        await copyRegular(outSig, join(temp, signatureFile));
        signatureCopied = true;
      }
    }
    if (!signatureCopied) await writeFile(join(temp, sumsFile), `${sums.join('\n')}\n`, { mode: 0o644 });
    copied.push(sumsFile, ...(signatureCopied ? [signatureFile] : []));
    // One publisher of this name at a time from here: the version folder, the current link, pruning.
    const lock = await acquireLock(join(nameDir, '.publish.lock'), { profile: `publish ${built.name}` });
    try {
      try {
        await rename(temp, final);
      } catch (error) {
        // Another publish of the same version won the race: theirs stays, ours goes.
        if ((error as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new UserError(`${built.name} ${built.version} was published in ${final} meanwhile: nothing was changed`);
        }
        throw error;
      }
      // current → the version just published, replaced in one rename.
      const link = join(nameDir, 'current');
      const linkTemp = join(nameDir, `.current.tmp-${process.pid}-${nonce(3)}`);
      await symlink(built.version, linkTemp);
      try {
        await rename(linkTemp, link);
      } catch (error) {
        await rm(linkTemp, { force: true });
        throw new UserError(`${link}: could not point it at ${built.version} (${(error as Error).message}); ${final} is published`);
      }
      if (options.keep !== undefined) {
        const current = await readlink(link).catch(() => built.version);
        const all = (await versions(nameDir, built.name)).filter((v) => v.version !== current && v.version !== built.version);
        const excess = all.slice(0, Math.max(0, all.length - (options.keep - 1)));
        for (const { version } of excess) {
          const gone = join(nameDir, `.${version}.removing-${process.pid}-${nonce(3)}`);
          try {
            await rename(join(nameDir, version), gone);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
            throw error;
          }
          await rm(gone, { recursive: true, force: true });
          removed.push(version);
        }
      }
    } finally {
      await lock.release();
    }
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
  return { folder: final, files: copied, signatureCopied, removed };
}
