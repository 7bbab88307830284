/**
 * The bench's floor (scripts/floor.ts): the busybox initramfs built by the real cpio from the
 * host's static busybox, and one real direct-kernel boot with the host's Debian kernel (about
 * 8-10 s under TCG) that prints the marker and powers off. The bench times it; this proves it runs.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { floorArgs, floorBoot, floorInit, floorInitramfs, floorMarker } from '../scripts/floor.ts';
import { timed } from './helpers/timing.ts';

const floor = timed(suite('the bench\'s floor boot'));
const dir = await mkdtemp(join(tmpdir(), 'gf-floor-'));
floor.after(async () => rm(dir, { recursive: true, force: true }));

floor('the initramfs holds busybox and an /init that prints the marker and powers off', async () => {
  assert.match(floorInit(), new RegExp(`^#!/bin/busybox sh\\n/bin/busybox echo ${floorMarker}\\n/bin/busybox poweroff -f\\n$`));
  const cpio = await floorInitramfs(dir);
  const listing = (await execa('cpio', ['-t', '--quiet', '-F', cpio])).stdout.split('\n').sort();
  assert.equal(listing, ['.', 'bin', 'bin/busybox', 'init']);
  const args = floorArgs('/k', cpio);
  for (const pair of [['-machine', 'pc'], ['-cpu', 'Penryn'], ['-smp', '1'], ['-kernel', '/k'], ['-initrd', cpio]]) {
    assert.is(args[args.indexOf(pair[0]!) + 1], pair[1], pair.join(' '));
  }
});

floor('a real direct-kernel boot with the host\'s kernel prints the marker and ends', async () => {
  const kernels = (await readdir('/boot')).filter((f) => f.startsWith('vmlinuz-')).sort();
  assert.ok(kernels.length > 0, 'linux-image-amd64 (a host package) gives /boot a kernel');
  const ms = await floorBoot(join('/boot', kernels.at(-1)!), await floorInitramfs(dir));
  assert.ok(ms > 0 && ms < 180_000, String(ms));
  process.stderr.write(`  floor with ${kernels.at(-1)}: ${(ms / 1000).toFixed(1)} s\n`);
});

floor.run();
