/**
 * What an image holds, as an SPDX 2.3 JSON document: the image itself as the
 * described package (with its sha256), and every package its own package
 * database lists (dpkg's status file or the rpm database, as verify reads
 * them), each with a package URL so advisory scanners can match it. Pure.
 */
import { createHash } from 'node:crypto';
import { bootChainPackage } from '../policy/firmware.ts';

export interface SbomPackage {
  name: string;
  version: string;
  arch?: string;
  /** "name version" of the source package. */
  source?: string;
  /** As the package database says it (rpm's LICENSE); dpkg has none. */
  license?: string;
}

export interface SbomInput {
  /** The image's name and version (profile `name`, `version`). */
  name: string;
  version: string;
  image: { file: string; sha256: string };
  /** os-release ID and VERSION_ID, for package URLs (`pkg:deb/debian/…?distro=debian-12`). */
  os?: { id: string; version: string };
  packageSource: 'dpkg' | 'rpm' | 'none';
  packages: SbomPackage[];
  /**
   * Packages guestforge made that stand in for others (trim ucx-no-rocm): no package URL (no
   * archive has them), and a comment naming what they replace and why.
   */
  stubs?: { name: string; replaces: string[]; why: string }[];
  /** What the image's firmware support is (its package's comment); the boot chain's packages say they are part of it. */
  firmware?: string;
  /** ISO time; SPDX wants it without fractions. */
  created: string;
  guestforgeVersion: string;
}

/** SPDX ids allow letters, digits, "." and "-". */
function spdxId(prefix: string, name: string, used: Set<string>): string {
  const base = `${prefix}-${name.replace(/[^A-Za-z0-9.-]/g, '-')}`;
  let id = base;
  for (let n = 2; used.has(id); n += 1) id = `${base}-${n}`;
  used.add(id);
  return id;
}

/** A package URL (purl) for a Debian or RPM package of this OS. */
export function packageUrl(p: SbomPackage, packageSource: SbomInput['packageSource'], os?: SbomInput['os']): string | undefined {
  if (packageSource === 'none' || !os?.id) return undefined;
  const type = packageSource === 'dpkg' ? 'deb' : 'rpm';
  const enc = (v: string) => encodeURIComponent(v);
  const qualifiers = [
    ...(p.arch ? [`arch=${enc(p.arch)}`] : []),
    `distro=${enc(`${os.id}-${os.version}`)}`,
  ];
  return `pkg:${type}/${enc(os.id)}/${enc(p.name)}@${enc(p.version)}?${qualifiers.join('&')}`;
}

/**
 * rpm's LICENSE is free text (Fedora's short names, not always SPDX ids) and dpkg has none:
 * never guessed into an SPDX expression, kept as the package database's words.
 */
function declaredLicense(license?: string): { licenseDeclared: string; licenseComments?: string } {
  return license ? { licenseDeclared: 'NOASSERTION', licenseComments: `the package database says: ${license}` } : { licenseDeclared: 'NOASSERTION' };
}

export function spdxDocument(input: SbomInput): Record<string, unknown> {
  const used = new Set<string>(['SPDXRef-DOCUMENT']);
  const imageId = spdxId('SPDXRef-Image', input.name, used);
  // Unique per image content: the same image described twice gets the same namespace.
  const unique = createHash('sha256').update(`${input.name}\n${input.version}\n${input.image.sha256}`).digest('hex').slice(0, 32);
  const packages = input.packages.map((p) => {
    const stub = input.stubs?.find((s) => s.name === p.name);
    const purl = stub ? undefined : packageUrl(p, input.packageSource, input.os);
    return {
      SPDXID: spdxId('SPDXRef-Package', p.name, used),
      name: p.name,
      versionInfo: p.version,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      licenseConcluded: 'NOASSERTION',
      ...declaredLicense(p.license),
      copyrightText: 'NOASSERTION',
      ...(p.source ? { sourceInfo: `built from source package ${p.source}` } : {}),
      ...(!stub && input.firmware && bootChainPackage.test(p.name) ? { comment: 'part of the image\'s boot chain (firmware to kernel)' } : {}),
      ...(stub ? { supplier: 'Organization: guestforge', comment: `an empty stub made by guestforge, installed in place of ${stub.replaces.join(', ')} (not in the image): ${stub.why}` } : {}),
      ...(purl ? { externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: purl }] } : {}),
    };
  });
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${input.name}-${input.version}`,
    documentNamespace: `https://spdx.org/spdxdocs/guestforge-${encodeURIComponent(input.name)}-${encodeURIComponent(input.version)}-${unique}`,
    creationInfo: {
      created: input.created.replace(/\.\d+Z$/, 'Z'),
      creators: [`Tool: guestforge-${input.guestforgeVersion}`],
      comment: input.packageSource === 'none'
        ? 'The image has no package database guestforge can read.'
        : `Packages as the image's ${input.packageSource === 'dpkg' ? 'dpkg status file' : 'rpm database'} lists them.${input.packageSource === 'dpkg' ? ' dpkg records no license: see /usr/share/doc/<package>/copyright in the image.' : ''}`,
    },
    documentDescribes: [imageId],
    packages: [
      {
        SPDXID: imageId,
        name: input.name,
        versionInfo: input.version,
        packageFileName: input.image.file,
        downloadLocation: 'NOASSERTION',
        filesAnalyzed: false,
        checksums: [{ algorithm: 'SHA256', checksumValue: input.image.sha256 }],
        licenseConcluded: 'NOASSERTION',
        licenseDeclared: 'NOASSERTION',
        copyrightText: 'NOASSERTION',
        primaryPackagePurpose: 'OPERATING-SYSTEM',
        ...(input.firmware ? { comment: input.firmware } : {}),
      },
      ...packages,
    ],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: imageId },
      ...packages.map((p) => ({ spdxElementId: imageId, relationshipType: 'CONTAINS', relatedSpdxElement: p.SPDXID })),
    ],
  };
}
