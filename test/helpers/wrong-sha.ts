/** A profile whose base image fails its sha256 check: a build that fails before any VM starts. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../src/exec/run.ts';

export async function writeWrongShaProfile(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', join(dir, 'base.qcow2'), '64M']);
  const file = join(dir, 'wrong-sha.yaml');
  await writeFile(file, [
    'name: wrong-sha',
    'os: { family: debian, release: "12" }',
    `base: { image: { path: base.qcow2, sha256: "${'0'.repeat(64)}" } }`,
    'disk: { size: 1G }',
  ].join('\n'));
  return file;
}
