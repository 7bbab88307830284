/**
 * The extra outputs (vmdk streamOptimized, rootfs tar and squashfs) from a
 * small hand-made disk, read back by their own tools: qemu-img, tar and
 * unsquashfs. The converters and the one guestfish tar-out are the same for
 * any image; a 64 MiB disk makes this seconds of compression instead of the
 * minutes a full Debian image costs under TCG.
 */
import { chown, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { convertImage, outputName, writeRootfsOutputs } from '../src/stages/outputs.ts';
import { diskUsage, usageOfMap } from '../src/vm/qemu-img.ts';
import { run } from '../src/exec/run.ts';
import type { DiskRef } from '../src/model/disk.ts';
import { makeImage } from './helpers/tree-image.ts';
import { timed } from './helpers/timing.ts';

const tmp = await mkdtemp(join(tmpdir(), 'gf-outputs-'));
const t = timed(suite('outputs (real qemu-img, guestfish, tar, mksquashfs)'));

t('vmdk streamOptimized, rootfs tar and squashfs keep the tree, its modes and numeric owners; no temp files left', async () => {
  const raw = await makeImage(tmp, 'guest', {
    'opt-vm/hello/bin/run.sh': '#!/bin/sh\necho hello\n',
    'etc/cloud/cloud.cfg.d/90_guestforge_datasource.cfg': 'datasource_list: [ NoCloud, None ]\n',
    workspace: { dir: true, mode: 0o1777 },
    'home/hpc': { dir: true, mode: 0o755 },
  }, async (dir) => {
    await run(['chmod', '0755', join(dir, 'opt-vm/hello/bin/run.sh')]);
    await chown(join(dir, 'home/hpc'), 1000, 1000);
  });
  const image: DiskRef = { path: raw, format: 'raw' };
  const dir = join(tmp, 'outputs');
  await mkdir(dir, { recursive: true });
  const vmdk = await convertImage(image, 'vmdk', 'none', join(dir, outputName('x', 'vmdk')));
  const info = JSON.parse((await run(['qemu-img', 'info', '--output=json', vmdk.path])).stdout);
  assert.is(info.format, 'vmdk');
  assert.is(info['format-specific']?.data?.['create-type'], 'streamOptimized');
  assert.is((await run(['qemu-img', 'compare', '-f', 'raw', '-F', 'vmdk', raw, vmdk.path], { allowFailure: true })).exitCode, 0, 'the vmdk holds the same bytes');

  const targets = { tar: join(dir, outputName('x', 'tar')), squashfs: join(dir, outputName('x', 'squashfs')) };
  const written = await writeRootfsOutputs(image, ['tar', 'squashfs'], targets, { accel: 'tcg', inspect: false });
  assert.equal(written.map((w) => w.format), ['tar', 'squashfs']);
  const tarList = (await run(['tar', '-tf', targets.tar])).stdout.split('\n');
  assert.ok(tarList.includes('./opt-vm/hello/bin/run.sh'), tarList.slice(0, 20).join('\n'));
  assert.ok(tarList.includes('./etc/cloud/cloud.cfg.d/90_guestforge_datasource.cfg'));
  const tarLong = (await run(['tar', '-tvf', targets.tar, '--numeric-owner'])).stdout;
  assert.match(tarLong, /^-rwxr-xr-x 0\/0 .* \.\/opt-vm\/hello\/bin\/run\.sh$/m);
  const sqList = (await run(['unsquashfs', '-l', targets.squashfs])).stdout;
  assert.match(sqList, /squashfs-root\/opt-vm\/hello\/bin\/run\.sh/);
  const sqLong = (await run(['unsquashfs', '-lln', targets.squashfs])).stdout;
  assert.match(sqLong, /^drwxrwxrwt 0\/0 .* squashfs-root\/workspace$/m, 'modes and numeric owners kept');
  assert.match(sqLong, /^d\S+ 1000\/1000 .* squashfs-root\/home\/hpc$/m);
  assert.equal((await readdir(dir)).filter((n) => n.includes('.tmp-')), [], 'no temp files left');
});

t('the manifest\'s disk usage: data bytes through a backing chain, holes and written zeroes not counted', async () => {
  const base = join(tmp, 'usage-base.qcow2');
  const top = join(tmp, 'usage-top.qcow2');
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '64M']);
  // 1 MiB of data, 1 MiB written as zeroes, 2 MiB of data in the base; 512 KiB more in the overlay.
  await run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 1 0 1M', '-c', 'write -z 4M 1M', '-c', 'write -P 2 8M 2M', base]);
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top]);
  await run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 3 16M 512K', '-c', 'write -z 8M 1M', top]);
  assert.equal(await diskUsage({ path: base, format: 'qcow2' }), { virtualBytes: 64 * 2 ** 20, dataBytes: 3 * 2 ** 20 });
  // The overlay zeroes half of the base's second extent and adds its own.
  assert.equal(await diskUsage({ path: top, format: 'qcow2' }), { virtualBytes: 64 * 2 ** 20, dataBytes: 2.5 * 2 ** 20 });
  assert.throws(() => usageOfMap('{"start": 0}'), /no list of extents/);
});

t.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});
t.run();
