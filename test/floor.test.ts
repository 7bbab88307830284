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
import { bootChart } from '../scripts/boot-chart.ts';
import { baselineToolsHook, dibInvocation } from '../scripts/dib.ts';
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

floor('the boot chart: bars to scale on one axis, each figure as seconds and a multiple of the floor, names escaped', () => {
  const svg = bootChart([
    { name: 'a<b>&"c"', floorMs: 4000, beforeKernelMs: 16000, kernelMs: 8000, userspaceMs: 36000, jobReadyMs: 100_000, cloudInitDoneMs: 200_000 },
    { name: 'floor only', floorMs: 5000 },
  ], 'title & more');
  assert.match(svg, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\n$/);
  assert.ok(svg.includes('a&lt;b&gt;&amp;&quot;c&quot;') && svg.includes('title &amp; more'), 'text escaped');
  assert.not.match(svg, /<b>/);
  // One axis for every bar: the floor's width against the firmware's is 4 s against 16 s.
  const width = (colour: string) => Number(new RegExp(`width="([\\d.]+)" height="\\d+" fill="${colour}"`).exec(svg)?.[1]);
  assert.ok(Math.abs(width('#e0a030') / width('#9e9e9e') - 4) < 0.01, `${width('#e0a030')} / ${width('#9e9e9e')}`);
  assert.match(svg, /smoke result 60\.0 s \(15\.0×\)/);
  assert.match(svg, /job-ready 100\.0 s \(25\.0×\)/);
  assert.match(svg, /cloud-init done 200\.0 s \(50\.0×\)/);
  assert.match(svg, />200 s</, 'the axis reaches the longest figure');
  assert.is((svg.match(/>floor</g) ?? []).length, 2, 'a floor bar per image');
  // The targets on the same axis, from each image's own floor: 4 × 4 s and 5 × 4 s.
  const dash = (label: string) => Number(new RegExp(`x="([\\d.]+)" y="[\\d.-]+" font-size="10" fill="#333">${label}`).exec(svg)?.[1]);
  const zero = Number(/<rect x="([\d.]+)" y="\d+" width="[\d.]+" height="\d+" fill="#9e9e9e"/.exec(svg)?.[1]);
  const floorWidth = width('#9e9e9e');
  assert.ok(Math.abs((dash('4× floor: smoke target') - 3 - zero) / floorWidth - 4) < 0.01 && Math.abs((dash('5× floor: job-ready target') - 3 - zero) / floorWidth - 5) < 0.01, `${dash('4× floor: smoke target')} ${zero} ${floorWidth}`);
});

floor('the bench\'s diskimage-builder run: the profile\'s suite, mirror and packages, like for like', () => {
  const lines = ['deb http://mirror.example/debian trixie main', 'deb http://mirror.example/debian trixie-updates main', 'deb http://mirror.example/debian-security trixie-security main'];
  const d = dibInvocation({ suite: 'trixie', packages: ['nfs-common', 'openmpi-bin', 'libmetis5', 'less', 'less'] }, lines, true, '/w/dib');
  assert.equal(d.argv, ['-o', '/w/dib', '-t', 'qcow2', '-p', 'nfs-common,openmpi-bin,libmetis5,less', 'debian-minimal', 'vm', 'cloud-init-datasources']);
  assert.equal(d.env, {
    DIB_RELEASE: 'trixie', DIB_CLOUD_INIT_DATASOURCES: 'NoCloud', DIB_DISTRIBUTION_MIRROR: 'http://mirror.example/debian',
    DIB_DEBIAN_SECURITY_MIRROR: 'http://mirror.example/debian-security', DIB_DEBIAN_SECURITY_SUBPATH: '-security',
  });
  assert.is(d.note, undefined);
  assert.ok(d.overrideBase, 'trixie: diskimage-builder 3.13\'s base element names a package trixie dropped');
  assert.is(dibInvocation({ suite: 'trixie', packages: [] }, lines, true, '/w/dib', '/w/elements').env.ELEMENTS_PATH, '/w/elements');
  assert.is(dibInvocation({ suite: 'trixie', packages: [] }, lines, true, '/w/dib', '/w/elements', '/w/dib-cache').env.DIB_IMAGE_CACHE, '/w/dib-cache', 'its own cache, fresh like ours');
  assert.not.ok(dibInvocation({ suite: 'bookworm', packages: [] }, lines, true, '/w/dib', '/w/elements').overrideBase, 'bookworm: as it is');
  assert.is(dibInvocation({ suite: 'bookworm', packages: [] }, lines, true, '/w/dib', '/w/elements').env.ELEMENTS_PATH, undefined);
  assert.match(baselineToolsHook, /^#!\/bin\/bash\n[\s\S]*apt-get -y update\ninstall-packages apt-transport-https\n$/);
  assert.not.match(baselineToolsHook, /software-properties-common\n/);
  const flat = dibInvocation({ suite: 'bookworm', packages: [] }, [], false, '/w/dib');
  assert.equal(flat.elements, ['debian-minimal', 'cloud-init-datasources'], 'no device-mapper: no vm element');
  assert.not.ok(flat.argv.includes('-p'), 'no packages: no -p');
  assert.match(flat.note ?? '', /no boot loader and no boot/);
  assert.is(flat.env.DIB_DISTRIBUTION_MIRROR, undefined, 'no line for the suite: diskimage-builder\'s own default');
});

floor.run();
