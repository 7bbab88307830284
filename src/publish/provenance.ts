/**
 * How an image was made, as an in-toto Statement (v1) with a SLSA provenance
 * (v1) predicate: the outputs and their sha256 as subjects, the profile and
 * every file it brought in (the files it extends, app sources, a local base
 * image or builder) with their digests, the base (the bootstrap's suite and
 * mirror, or the base image and its sha256), guestforge's and the host
 * tools' versions, and when the build started and ended.
 * Unsigned: `guestforge sign` signs SHA256SUMS, which lists this file.
 */
import { realpath, stat } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { hashTree, sha256File } from '../util/fs.ts';

export const buildType = 'urn:guestforge:build:v1';

export interface Dependency {
  uri: string;
  digest: Record<string, string>;
  name?: string;
  annotations?: Record<string, string>;
}

export interface ProvenanceInput {
  name: string;
  version: string;
  subjects: { file: string; sha256: string }[];
  profile: { path: string; sha256: string };
  inputs: Dependency[];
  /** The base image or the bootstrap's mirror. */
  base?: Dependency;
  guestforgeVersion: string;
  tools: Record<string, string>;
  accel: string;
  backend: string;
  smoke: boolean;
  buildId: string;
  startedOn: string;
  finishedOn: string;
}

/** A file's sha256, or a folder's tree hash (names, modes, link targets, contents: hashTree). */
export async function fileDependency(given: string, name?: string): Promise<Dependency> {
  // As the build read it: through links (an app's src may be a link to a folder).
  const path = await realpath(given);
  const st = await stat(path);
  const digest: Record<string, string> = st.isDirectory() ? { 'guestforge-tree-sha256': await hashTree(path) } : { sha256: await sha256File(path) };
  return { uri: pathToFileURL(given).href, digest, ...(name ? { name } : {}) };
}

export function provenanceStatement(input: ProvenanceInput): Record<string, unknown> {
  return {
    _type: 'https://in-toto.io/Statement/v1',
    subject: input.subjects.map((s) => ({ name: s.file, digest: { sha256: s.sha256 } })),
    predicateType: 'https://slsa.dev/provenance/v1',
    predicate: {
      buildDefinition: {
        buildType,
        externalParameters: {
          profile: { uri: pathToFileURL(input.profile.path).href, digest: { sha256: input.profile.sha256 } },
          name: input.name,
          version: input.version,
        },
        internalParameters: { accel: input.accel, backend: input.backend, smoke: input.smoke },
        resolvedDependencies: [
          ...(input.base ? [input.base] : []),
          ...input.inputs,
        ],
      },
      runDetails: {
        builder: { id: buildType.replace(':build:', ':builder:'), version: { guestforge: input.guestforgeVersion, ...input.tools } },
        metadata: { invocationId: input.buildId, startedOn: input.startedOn, finishedOn: input.finishedOn },
      },
    },
  };
}
