/**
 * Pushing a built image to an OCI registry with skopeo.
 *
 * containerdisk (default): a KubeVirt containerDisk, a single-layer image
 * whose layer holds the disk at /disk/<file>, owned 107:107 (the qemu user
 * KubeVirt runs as) and readable by it. The layer is an uncompressed tar made
 * by GNU tar with fixed owners, modes and mtime (the build time), so pushing
 * the same image twice gives the same digest; compressing an already
 * compressed qcow2 again would cost minutes and save nothing.
 *
 * oci-artifact: the qcow2 itself as the single blob of an OCI artifact
 * manifest (artifactType application/vnd.guestforge.disk.qcow2), its SBOM
 * and provenance as further blobs with their titles, so `oras pull` or
 * skopeo get the files back unchanged.
 *
 * Both are written as an OCI image layout in a temp folder, then copied by
 * `skopeo copy oci:… docker://…`.
 */
import { copyFile, link, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { UsageError, UserError } from '../errors.ts';
import { run } from '../exec/run.ts';
import { sha256File, sha256Text } from '../util/fs.ts';
import { builtImage, type BuiltImage } from './publish.ts';

export type PushFormat = 'containerdisk' | 'oci-artifact';

/** `docker://HOST[:PORT]/REPO[:TAG]`, checked before anything is packed; the tag defaults to the image's version. */
export function parseDestination(dest: string, version: string): { ref: string; host: string } {
  const m = /^docker:\/\/([A-Za-z0-9.-]+(?::\d{1,5})?)\/([a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)(?::([A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?$/.exec(dest);
  if (!m) throw new UsageError(`push: ${JSON.stringify(dest)} is not docker://HOST/REPO[:TAG]`, { hint: 'e.g. docker://registry.cluster.example:5000/vm/debian-12-hpc:1.0 (repository names are lower case)' });
  // A version may hold "+", which tags may not: "_" stands for it, as Helm does.
  return { ref: `docker://${m[1]}/${m[2]}:${m[3] ?? version.replaceAll('+', '_')}`, host: m[1]! };
}

interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** A hard link when both are on one filesystem (no copy of a large disk), else a copy. */
async function linkOrCopy(path: string, target: string): Promise<void> {
  await link(path, target).catch(async () => copyFile(path, target));
}

async function addBlob(layout: string, path: string, mediaType: string, annotations?: Record<string, string>, knownSha256?: string): Promise<Blob> {
  const hex = knownSha256 ?? (await sha256File(path));
  const target = join(layout, 'blobs', 'sha256', hex);
  await linkOrCopy(path, target);
  return { mediaType, digest: `sha256:${hex}`, size: (await stat(path)).size, ...(annotations ? { annotations } : {}) };
}

async function addJson(layout: string, value: unknown, mediaType: string): Promise<Blob> {
  const text = JSON.stringify(value);
  const hex = sha256Text(text);
  await writeFile(join(layout, 'blobs', 'sha256', hex), text);
  return { mediaType, digest: `sha256:${hex}`, size: Buffer.byteLength(text) };
}

/** The OCI image layout to push: a containerDisk image or an artifact. Returns the layout folder and its tag. */
export async function ociLayout(built: BuiltImage, format: PushFormat, work: string): Promise<string> {
  const layout = join(work, 'layout');
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const created = built.builtAt || new Date(0).toISOString();
  const annotations = {
    'org.opencontainers.image.title': built.name,
    'org.opencontainers.image.version': built.version,
    'org.opencontainers.image.created': created,
  };
  let manifest: Record<string, unknown>;
  if (format === 'containerdisk') {
    const tree = join(work, 'tree');
    await mkdir(join(tree, 'disk'), { recursive: true });
    await linkOrCopy(built.image, join(tree, 'disk', basename(built.image)));
    const layer = join(work, 'layer.tar');
    const mtime = `@${Math.floor(Date.parse(created) / 1000)}`;
    await run(['tar', '--create', '--file', layer, '--format=posix', '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
      '--sort=name', '--owner=107', '--group=107', '--numeric-owner', `--mtime=${mtime}`, '--mode=u=rX,g=rX,o=', '-C', tree, 'disk'], { timeoutMs: 30 * 60_000 });
    const layerBlob = await addBlob(layout, layer, 'application/vnd.oci.image.layer.v1.tar');
    const config = await addJson(layout, {
      created, architecture: 'amd64', os: 'linux',
      config: { Labels: annotations },
      rootfs: { type: 'layers', diff_ids: [layerBlob.digest] },
    }, 'application/vnd.oci.image.config.v1+json');
    manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layerBlob], annotations };
  } else {
    const empty = await addJson(layout, {}, 'application/vnd.oci.empty.v1+json');
    const layers: Blob[] = [];
    for (const f of built.files) {
      const type = f === built.image ? 'application/vnd.guestforge.disk.qcow2' : f.endsWith('.spdx.json') ? 'application/spdx+json' : f.endsWith('.provenance.json') ? 'application/vnd.in-toto+json' : 'application/vnd.guestforge.manifest+json';
      layers.push(await addBlob(layout, f, type, { 'org.opencontainers.image.title': basename(f) }, f === built.image ? built.sha256 : undefined));
    }
    manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.guestforge.disk.qcow2', config: empty, layers, annotations };
  }
  const manifestBlob = await addJson(layout, manifest, 'application/vnd.oci.image.manifest.v1+json');
  await writeFile(join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ ...manifestBlob, annotations: { 'org.opencontainers.image.ref.name': built.version } }],
  }));
  return layout;
}

export interface PushResult {
  ref: string;
  digest: string;
  format: PushFormat;
}

export async function push(image: string, dest: string, options: { format?: PushFormat; insecure?: boolean; authfile?: string } = {}): Promise<PushResult> {
  const format = options.format ?? 'containerdisk';
  const built = await builtImage(image);
  const { ref, host } = parseDestination(dest, built.version);
  const work = await mkdtemp(join(tmpdir(), 'guestforge-push-'));
  try {
    const layout = await ociLayout(built, format, work);
    const digestFile = join(work, 'digest');
    const argv = ['skopeo', 'copy', '--quiet', '--digestfile', digestFile,
      ...(options.insecure ? ['--dest-tls-verify=false'] : []),
      ...(options.authfile ? ['--dest-authfile', options.authfile] : []),
      `oci:${layout}:${built.version}`, ref];
    const r = await run(argv, { allowFailure: true, timeoutMs: 60 * 60_000 });
    if (r.exitCode !== 0) {
      const why = r.stderr.trim().split('\n').filter(Boolean).at(-1) ?? `exit ${r.exitCode}`;
      throw new UserError(`push to ${ref} failed: ${why.replace(/^time="[^"]*" level=\w+ msg="?/, '').slice(0, 400)}`, {
        hint: /connection refused|no such host|i\/o timeout|dial tcp/i.test(r.stderr)
          ? `is the registry at ${host} running and reachable from here?`
          : /http response to HTTPS client|certificate/i.test(r.stderr)
            ? `a registry without TLS (or with a certificate this host does not trust) needs --insecure`
            : /unauthorized|authentication required|denied/i.test(r.stderr)
              ? 'log in first (skopeo login HOST) or pass --authfile'
              : undefined,
      });
    }
    return { ref, digest: (await readFile(digestFile, 'utf8')).trim(), format };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
