/**
 * Publishing what was built, on a small qcow2 with the records a build
 * writes beside it (no VM: the default build in e2e.test.ts proves the SBOM
 * and provenance of a real image). Real tools: gpg signs and checks,
 * docker-registry (Debian's distribution registry) runs on 127.0.0.1, skopeo
 * pushes to it and pulls back, GNU tar reads the containerDisk layer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { parseDpkgPackages, parseRpmQuery } from '../src/verify/parse.ts';
import { packageUrl, spdxDocument } from '../src/publish/sbom.ts';
import { provenanceStatement } from '../src/publish/provenance.ts';
import { baseDependency } from '../src/publish/records.ts';
import { parseDestination } from '../src/publish/push.ts';
import { sha256File } from '../src/util/fs.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const tmp = await mkdtemp(join(tmpdir(), 'gf-publish-'));
const gnupg = join(tmp, 'gnupg');

function guestforge(args: string[], env: Record<string, string> = {}) {
  return execa('node', [cli, ...args], { reject: false, all: true, env: { GNUPGHOME: gnupg, ...env }, timeout: 10 * 60_000 });
}

/** A folder as a build leaves it: image, manifest, SBOM, provenance, SHA256SUMS. */
async function builtFolder(dir: string, version: string, fill = 'a'): Promise<string> {
  await mkdir(dir, { recursive: true });
  const image = join(dir, 'tiny.qcow2');
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', image, '16M']);
  // Different content per version: a raw write through qemu-io would need more tools; the qcow2 header is enough here.
  await writeFile(join(dir, 'tiny.qcow2'), Buffer.concat([await readFile(image), Buffer.from(fill.repeat(512))]));
  const sha256 = await sha256File(image);
  const builtAt = new Date(Date.UTC(2026, 10, 29, 12, Number(version.replace(/\D/g, '').slice(-2) || 0))).toISOString();
  await writeFile(join(dir, 'tiny.manifest.json'), JSON.stringify({ name: 'tiny', version, builtAt, outputs: [{ file: 'tiny.qcow2', format: 'qcow2', bytes: (await stat(image)).size, sha256 }] }));
  await writeFile(join(dir, 'tiny.spdx.json'), JSON.stringify(spdxDocument({
    name: 'tiny', version, image: { file: 'tiny.qcow2', sha256 }, os: { id: 'debian', version: '12' }, packageSource: 'dpkg',
    packages: [{ name: 'cloud-init', version: '22.4.2-1', arch: 'all', source: 'cloud-init 22.4.2-1' }], created: builtAt, guestforgeVersion: '0.1.0',
  })));
  // The provenance vouches for the image, manifest and SBOM by their sums, as a build's does.
  await writeFile(join(dir, 'tiny.provenance.json'), JSON.stringify(provenanceStatement({
    name: 'tiny', version, profile: { path: '/p/tiny.yaml', sha256: '0'.repeat(64) }, inputs: [], guestforgeVersion: '0.1.0', tools: {}, accel: 'tcg', backend: 'qemu', smoke: true,
    buildId: 'x', startedOn: builtAt, finishedOn: builtAt,
    subjects: await Promise.all(['tiny.qcow2', 'tiny.spdx.json', 'tiny.manifest.json'].map(async (f) => ({ file: f, sha256: await sha256File(join(dir, f)) }))),
  })));
  const lines = [];
  for (const f of ['tiny.manifest.json', 'tiny.provenance.json', 'tiny.qcow2', 'tiny.spdx.json']) lines.push(`${await sha256File(join(dir, f))}  ${f}`);
  await writeFile(join(dir, 'SHA256SUMS'), `${lines.join('\n')}\n`);
  return image;
}

// ---- pure: package databases, SBOM, provenance
const records = suite('SBOM and provenance (pure)');

records('dpkg status and rpm query lines give version, architecture, source package and license', () => {
  const dpkg = parseDpkgPackages([
    'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9\n',
    'Package: libx\nStatus: install ok installed\nArchitecture: amd64\nSource: x-src (1.2-3)\nVersion: 1.2-3+b1\n',
    'Package: cloud-init\nStatus: install ok installed\nArchitecture: all\nVersion: 22.4.2-1\n',
    'Package: gone\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 1\n',
  ].join('\n'));
  assert.equal([...dpkg], [
    ['libc6', { version: '2.36-9', arch: 'amd64', source: 'glibc 2.36-9' }],
    ['libx', { version: '1.2-3+b1', arch: 'amd64', source: 'x-src 1.2-3' }],
    ['cloud-init', { version: '22.4.2-1', arch: 'all', source: 'cloud-init 22.4.2-1' }],
  ]);
  const rpm = parseRpmQuery('bash\t5.1.8-9.el9\tx86_64\tbash-5.1.8-9.el9.src.rpm\tGPLv3+\ngpg-pubkey\t1-2\t(none)\t(none)\t(none)\nkernel-core\t5.14.0-1.el9\tx86_64\tkernel-5.14.0-1.el9.src.rpm\tGPL-2.0-only\n');
  assert.equal([...rpm], [
    ['bash', { version: '5.1.8-9.el9', arch: 'x86_64', source: 'bash 5.1.8-9.el9', license: 'GPLv3+' }],
    ['kernel-core', { version: '5.14.0-1.el9', arch: 'x86_64', source: 'kernel 5.14.0-1.el9', license: 'GPL-2.0-only' }],
  ]);
});

records('the SPDX 2.3 document has its required fields, unique ids, package URLs, and relationships to packages it has', () => {
  const doc = spdxDocument({
    name: 'img', version: '1.0', image: { file: 'img.qcow2', sha256: 'ab'.repeat(32) }, os: { id: 'debian', version: '12' }, packageSource: 'dpkg',
    packages: [{ name: 'libstdc++6', version: '12.2.0-14', arch: 'amd64' }, { name: 'libstdc--6', version: '1' }, { name: 'bash', version: '5.2.15-2+b2', license: 'GPL-3+' }],
    created: '2026-11-29T12:00:00.123Z', guestforgeVersion: '0.1.0',
  }) as { [k: string]: unknown; packages: Record<string, unknown>[]; relationships: Record<string, string>[]; creationInfo: { created: string; creators: string[] } };
  for (const field of ['spdxVersion', 'dataLicense', 'SPDXID', 'name', 'documentNamespace', 'creationInfo', 'packages', 'relationships']) assert.ok(doc[field], field);
  assert.is(doc.spdxVersion, 'SPDX-2.3');
  assert.is(doc.dataLicense, 'CC0-1.0');
  assert.is(doc.creationInfo.created, '2026-11-29T12:00:00Z');
  assert.equal(doc.creationInfo.creators, ['Tool: guestforge-0.1.0']);
  const ids = doc.packages.map((p) => p.SPDXID as string);
  assert.is(new Set(ids).size, ids.length, 'SPDX ids are unique');
  for (const p of doc.packages) {
    assert.match(p.SPDXID as string, /^SPDXRef-[A-Za-z0-9.-]+$/);
    for (const field of ['name', 'downloadLocation', 'licenseConcluded', 'licenseDeclared', 'copyrightText']) assert.ok(p[field] !== undefined, `${p.name}: ${field}`);
    assert.is(p.filesAnalyzed, false);
  }
  assert.equal(doc.packages[0]!.checksums, [{ algorithm: 'SHA256', checksumValue: 'ab'.repeat(32) }]);
  for (const r of doc.relationships) {
    assert.ok(r.spdxElementId === 'SPDXRef-DOCUMENT' || ids.includes(r.spdxElementId!), r.spdxElementId);
    assert.ok(ids.includes(r.relatedSpdxElement!), r.relatedSpdxElement);
  }
  assert.is(doc.relationships.filter((r) => r.relationshipType === 'CONTAINS').length, 3);
  const bash = doc.packages.find((p) => p.name === 'bash')!;
  assert.is(bash.licenseDeclared, 'NOASSERTION', 'free-text licenses are not passed off as SPDX expressions');
  assert.match(bash.licenseComments as string, /GPL-3\+/);
  assert.equal((doc.packages[1]!.externalRefs as { referenceLocator: string }[])[0]!.referenceLocator, 'pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12');
  assert.is(packageUrl({ name: 'bash', version: '5.1-9.el9', arch: 'x86_64' }, 'rpm', { id: 'rocky', version: '9.3' }), 'pkg:rpm/rocky/bash@5.1-9.el9?arch=x86_64&distro=rocky-9.3');
});

records('a stub package is in the SBOM as guestforge\'s, with what it replaces and why, and no Debian package URL', () => {
  const doc = spdxDocument({
    name: 'img', version: '1.0', image: { file: 'img.qcow2', sha256: 'ab'.repeat(32) }, os: { id: 'debian', version: '13' }, packageSource: 'dpkg',
    packages: [{ name: 'guestforge-no-rocm', version: '1', arch: 'all' }, { name: 'libucx0', version: '1.18.1+ds-2+b1', arch: 'amd64' }],
    stubs: [{ name: 'guestforge-no-rocm', replaces: ['libamdhip64-5', 'libhsa-runtime64-1'], why: 'trim ucx-no-rocm: no AMD GPU' }],
    created: '2026-12-02T12:00:00Z', guestforgeVersion: '0.1.0',
  }) as { packages: Record<string, unknown>[] };
  const stub = doc.packages.find((p) => p.name === 'guestforge-no-rocm')!;
  assert.is(stub.externalRefs, undefined, 'no archive has it: a pkg:deb/debian purl would send scanners looking');
  assert.is(stub.supplier, 'Organization: guestforge');
  assert.match(stub.comment as string, /in place of libamdhip64-5, libhsa-runtime64-1 .*trim ucx-no-rocm/);
  assert.ok(doc.packages.find((p) => p.name === 'libucx0')!.externalRefs, 'real packages keep theirs');
});

records('the provenance is an in-toto statement with a SLSA v1 predicate naming outputs, profile, inputs and base', () => {
  const statement = provenanceStatement({
    name: 'img', version: '1.0', subjects: [{ file: 'img.qcow2', sha256: 'cd'.repeat(32) }],
    profile: { path: '/p/img.yaml', sha256: 'ef'.repeat(32) },
    inputs: [{ uri: 'file:///p/app.sh', digest: { sha256: '01'.repeat(32) }, name: 'app /opt-vm/app.sh' }],
    base: baseDependency({ source: 'mmdebstrap bookworm (important) from http://deb.example.invalid/debian', sha256: '02'.repeat(32), cached: false }),
    guestforgeVersion: '0.1.0', tools: { 'qemu-img': 'qemu-img version 7.2.0' }, accel: 'tcg', backend: 'qemu', smoke: true,
    buildId: 'abc', startedOn: '2026-11-29T12:00:00.000Z', finishedOn: '2026-11-29T12:07:00.000Z',
  }) as { _type: string; subject: unknown[]; predicateType: string; predicate: { buildDefinition: { buildType: string; resolvedDependencies: { name?: string; uri: string; annotations?: Record<string, string> }[] }; runDetails: { metadata: Record<string, string>; builder: { id: string } } } };
  assert.is(statement._type, 'https://in-toto.io/Statement/v1');
  assert.is(statement.predicateType, 'https://slsa.dev/provenance/v1');
  assert.equal(statement.subject, [{ name: 'img.qcow2', digest: { sha256: 'cd'.repeat(32) } }]);
  const deps = statement.predicate.buildDefinition.resolvedDependencies;
  assert.equal(deps[0], { name: 'base', uri: 'http://deb.example.invalid/debian', digest: { sha256: '02'.repeat(32) }, annotations: { bootstrap: 'mmdebstrap bookworm (important) from http://deb.example.invalid/debian' } });
  assert.is(deps[1]!.name, 'app /opt-vm/app.sh');
  assert.equal(statement.predicate.runDetails.metadata, { invocationId: 'abc', startedOn: '2026-11-29T12:00:00.000Z', finishedOn: '2026-11-29T12:07:00.000Z' });
  assert.match(statement.predicate.buildDefinition.buildType, /^urn:guestforge:/);
});

records('push destinations: docker://HOST/REPO[:TAG], the tag defaulting to the version; anything else refused', () => {
  assert.equal(parseDestination('docker://127.0.0.1:5000/vm/debian-12-hpc', '20261129-ab'), { ref: 'docker://127.0.0.1:5000/vm/debian-12-hpc:20261129-ab', host: '127.0.0.1:5000' });
  assert.is(parseDestination('docker://reg.example/vm/x:1.0', 'v').ref, 'docker://reg.example/vm/x:1.0');
  for (const bad of ['127.0.0.1:5000/vm/x', 'docker://host/UPPER:1', 'docker://host/vm/x:-bad', 'oci:/tmp/x', 'docker://host/vm/x:1;rm']) {
    assert.throws(() => parseDestination(bad, 'v'), /is not docker:\/\/HOST\/REPO/, bad);
  }
});

// ---- real tools
const real = timed(suite('sign, publish and push with the real tools'));

real.before(async () => {
  await mkdir(gnupg, { recursive: true });
  await chmod(gnupg, 0o700);
  for (const who of ['signer', 'other']) {
    const r = await execa('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', `${who} <${who}@example.invalid>`, 'ed25519', 'sign', 'never'], { env: { GNUPGHOME: gnupg }, reject: false });
    assert.is(r.exitCode, 0, r.stderr);
    await execa('gpg', ['--batch', '--armor', '--output', join(tmp, `${who}.asc`), '--export', `${who}@example.invalid`], { env: { GNUPGHOME: gnupg } });
  }
});

real('sign → verify-signature passes; one flipped byte in the image fails naming it; another key fails; no key fails the build before it starts', async () => {
  const out = join(tmp, 'signed');
  const image = await builtFolder(out, '1.0');
  const s = await guestforge(['sign', out, '--key', 'signer@example.invalid']);
  assert.is(s.exitCode, 0, s.all);
  assert.match(await readFile(join(out, 'SHA256SUMS.asc'), 'utf8'), /^-----BEGIN PGP SIGNATURE-----/);
  const ok = await guestforge(['verify-signature', out, '--pubkey', join(tmp, 'signer.asc')]);
  assert.is(ok.exitCode, 0, ok.all);
  assert.match(ok.stdout, /^OK {4}SHA256SUMS\.asc {2}good signature by [0-9A-F]{40}$/m);
  assert.match(ok.stdout, /^OK {4}tiny\.qcow2$/m);
  const wrongKey = await guestforge(['verify-signature', out, '--pubkey', join(tmp, 'other.asc')]);
  assert.is(wrongKey.exitCode, 1, wrongKey.all);
  assert.match(wrongKey.stdout, /FAIL {2}SHA256SUMS\.asc {2}SHA256SUMS\.asc was made by a key that is not/);
  const bytes = await readFile(image);
  bytes[100] = bytes[100]! ^ 0xff;
  await writeFile(image, bytes);
  const flipped = await guestforge(['verify-signature', out, '--pubkey', join(tmp, 'signer.asc'), '--json']);
  assert.is(flipped.exitCode, 1, flipped.all);
  const report = JSON.parse(flipped.stdout) as { ok: boolean; files: { file: string; status: string }[]; signatureProblem?: string };
  assert.equal(report.files.filter((f) => f.status !== 'ok'), [{ file: 'tiny.qcow2', status: 'changed' }]);
  assert.is(report.signatureProblem, undefined, 'the signature itself still holds: the image is what changed');
  assert.match(flipped.stderr, /wrong: tiny\.qcow2 \(changed\)/);
  await writeFile(join(out, 'SHA256SUMS'), `${await readFile(join(out, 'SHA256SUMS'), 'utf8')}${'0'.repeat(64)}  extra\n`);
  const tampered = await guestforge(['verify-signature', out, '--pubkey', join(tmp, 'signer.asc')]);
  assert.is(tampered.exitCode, 1);
  assert.match(tampered.stdout, /SHA256SUMS was changed after it was signed/);
  const noKey = await guestforge(['build', join(root, 'profiles', 'debian-12-hpc.yaml'), '-o', join(tmp, 'never'), '--sign-key', 'nobody@example.invalid']);
  assert.is(noKey.exitCode, 2, noKey.all);
  assert.match(noKey.all, /--sign-key nobody@example\.invalid: no such secret key/);
  assert.not.ok(existsSync(join(tmp, 'never')), 'refused before the output folder was made');
});

real('publish: a versioned folder and a current link; the same version again changes nothing (exit 1); --keep 2 leaves two', async () => {
  const share = join(tmp, 'share');
  await mkdir(share);
  const first = await builtFolder(join(tmp, 'v1'), '1.0', 'a');
  await execa('gpg', ['--batch', '--yes', '--local-user', 'signer@example.invalid', '--armor', '--detach-sign', '--output', join(tmp, 'v1', 'SHA256SUMS.asc'), join(tmp, 'v1', 'SHA256SUMS')], { env: { GNUPGHOME: gnupg } });
  const p1 = await guestforge(['publish', first, '--to', share]);
  assert.is(p1.exitCode, 0, p1.all);
  const v1 = join(share, 'tiny', '1.0');
  assert.equal((await readdir(v1)).sort(), ['SHA256SUMS', 'SHA256SUMS.asc', 'tiny.manifest.json', 'tiny.provenance.json', 'tiny.qcow2', 'tiny.spdx.json']);
  assert.is(await readlink(join(share, 'tiny', 'current')), '1.0');
  const sums = await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: v1, reject: false });
  assert.is(sums.exitCode, 0, sums.stdout);
  const check = await guestforge(['verify-signature', v1, '--pubkey', join(tmp, 'signer.asc')]);
  assert.is(check.exitCode, 0, `the build's signature travels with the files it covers: ${check.all}`);
  assert.is((await stat(join(v1, 'tiny.qcow2'))).mode & 0o777, 0o644);

  const before = await readFile(join(v1, 'tiny.qcow2'));
  const again = await builtFolder(join(tmp, 'v1-again'), '1.0', 'z');
  const p2 = await guestforge(['publish', again, '--to', share]);
  assert.is(p2.exitCode, 1, p2.all);
  assert.match(p2.all, /tiny 1\.0 is already published in .*: nothing was changed/);
  assert.ok(before.equals(await readFile(join(v1, 'tiny.qcow2'))), 'the published image is untouched');
  assert.equal((await readdir(join(share, 'tiny'))).filter((n) => n.startsWith('.') && n !== '.publish.lock'), [], 'no temp folder left');

  await mkdir(join(share, 'tiny', 'backup'));
  for (const [v, fill] of [['1.1', 'b'], ['1.2', 'c']] as const) {
    const img = await builtFolder(join(tmp, `v${v}`), v, fill);
    const r = await guestforge(['publish', img, '--to', share, '--keep', '2']);
    assert.is(r.exitCode, 0, r.all);
  }
  assert.equal((await readdir(join(share, 'tiny'))).sort(), ['.publish.lock', '1.1', '1.2', 'backup', 'current'], '--keep leaves what is no version of this image (backup) alone');
  assert.is(await readlink(join(share, 'tiny', 'current')), '1.2');
  const notMine = await guestforge(['publish', join(tmp, 'tiny-elsewhere.qcow2'), '--to', share]);
  assert.is(notMine.exitCode, 2, notMine.all);
  // Records beside an image are not trusted: a linked SBOM, a provenance for other files, a version the share uses itself.
  const linked = await builtFolder(join(tmp, 'linked'), '3.0', 'l');
  await rm(join(tmp, 'linked', 'tiny.spdx.json'));
  await symlink('/etc/hostname', join(tmp, 'linked', 'tiny.spdx.json'));
  const l = await guestforge(['publish', linked, '--to', share]);
  assert.is(l.exitCode, 1, l.all);
  assert.match(l.all, /tiny\.spdx\.json: not a regular file \(a link\?\): refused/);
  const other = await builtFolder(join(tmp, 'other'), '3.1', 'o');
  await writeFile(join(tmp, 'other', 'tiny.spdx.json'), '{"forged": true}\n');
  const o = await guestforge(['publish', other, '--to', share]);
  assert.is(o.exitCode, 1, o.all);
  assert.match(o.all, /tiny\.provenance\.json does not vouch for tiny\.spdx\.json/);
  const cur = await builtFolder(join(tmp, 'cur'), 'current', 'c');
  const c = await guestforge(['publish', cur, '--to', share]);
  assert.is(c.exitCode, 2, c.all);
  assert.match(c.all, /no usable version/);
  assert.equal((await readdir(join(share, 'tiny'))).sort(), ['.publish.lock', '1.1', '1.2', 'backup', 'current'], 'refused publishes left nothing');
});

/** A free TCP port on 127.0.0.1. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  await once(server, 'close');
  return port;
}

let registry: ChildProcess | undefined;

real('push: a containerDisk and an OCI artifact to a registry on 127.0.0.1, pulled back with equal sha256; a registry that is down fails with exit 1', async () => {
  const port = await freePort();
  const config = join(tmp, 'registry.yml');
  await writeFile(config, [
    'version: 0.1',
    'storage:',
    `  filesystem: { rootdirectory: ${join(tmp, 'registry-data')} }`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
    'log: { level: error }',
    '',
  ].join('\n'));
  registry = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  for (let i = 0; i < 100; i += 1) {
    const up = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.ok, () => false);
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const image = await builtFolder(join(tmp, 'push'), '2.0', 'p');
  const dest = `docker://127.0.0.1:${port}/vm/tiny`;
  const r = await guestforge(['push', image, dest, '--insecure']);
  assert.is(r.exitCode, 0, r.all);
  assert.match(r.stdout, new RegExp(`pushed docker://127\\.0\\.0\\.1:${port}/vm/tiny:2\\.0 \\(containerdisk\\) sha256:[0-9a-f]{64}`));
  const inspect = JSON.parse((await execa('skopeo', ['inspect', '--tls-verify=false', `${dest}:2.0`])).stdout) as { Layers: string[]; Labels: Record<string, string> };
  assert.is(inspect.Layers.length, 1);
  assert.is(inspect.Labels['org.opencontainers.image.version'], '2.0');
  const pulled = join(tmp, 'pulled');
  await execa('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `${dest}:2.0`, `oci:${pulled}:x`]);
  const index = JSON.parse(await readFile(join(pulled, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(await readFile(join(pulled, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  const layer = join(pulled, 'blobs', 'sha256', manifest.layers[0]!.digest.slice(7));
  const listing = (await execa('tar', ['-tvf', layer, '--numeric-owner'])).stdout;
  assert.match(listing, /^-r--r----- 107\/107 +\d+ .* disk\/tiny\.qcow2$/m);
  const extracted = join(tmp, 'extracted');
  await mkdir(extracted);
  await execa('tar', ['-xf', layer, '-C', extracted]);
  assert.is(await sha256File(join(extracted, 'disk', 'tiny.qcow2')), await sha256File(image));
  const again = await guestforge(['push', image, dest, '--insecure']);
  assert.is(again.stdout.split(' ').at(-1), r.stdout.split(' ').at(-1), 'the same image pushes to the same digest');

  const art = await guestforge(['push', image, `${dest}:2.0-artifact`, '--format', 'oci-artifact', '--insecure']);
  assert.is(art.exitCode, 0, art.all);
  const raw = JSON.parse((await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `${dest}:2.0-artifact`])).stdout) as { artifactType: string; layers: { digest: string; annotations: Record<string, string> }[] };
  assert.is(raw.artifactType, 'application/vnd.guestforge.disk.qcow2');
  const disk = raw.layers.find((l) => l.annotations['org.opencontainers.image.title'] === 'tiny.qcow2')!;
  const blob = Buffer.from(await (await fetch(`http://127.0.0.1:${port}/v2/vm/tiny/blobs/${disk.digest}`)).arrayBuffer());
  assert.ok(blob.equals(await readFile(image)), 'the artifact blob is the image');
  assert.ok(raw.layers.some((l) => l.annotations['org.opencontainers.image.title'] === 'tiny.spdx.json'));

  registry.kill('SIGTERM');
  await once(registry, 'exit');
  registry = undefined;
  const down = await guestforge(['push', image, dest, '--insecure']);
  assert.is(down.exitCode, 1, down.all);
  assert.match(down.all, /push to docker:\/\/127\.0\.0\.1:\d+\/vm\/tiny:2\.0 failed: /);
  assert.match(down.all, /is the registry at 127\.0\.0\.1:\d+ running and reachable from here\?/);
});

real.after(async () => {
  registry?.kill('SIGKILL');
  await execa('gpgconf', ['--kill', 'all'], { env: { GNUPGHOME: gnupg }, reject: false });
  await rm(tmp, { recursive: true, force: true });
});

records.run();
real.run();
