/**
 * The machine's floor for a boot, measured in the same run as the figures it judges: qemu under
 * TCG, with the cluster's machine (pc, Penryn, 1 vCPU), boots the image's own kernel directly
 * (`-kernel`, no firmware disk reads, no GRUB) into a busybox initramfs that prints one line and
 * powers off. Everything a job VM does beyond that is the image's or the cluster's.
 */
import { chmod, mkdir, rm, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../src/exec/run.ts';
import { GuestSession } from '../src/guestfs/session.ts';
import { mountGuest } from '../src/verify/mount.ts';

export const floorMarker = 'GUESTFORGE-FLOOR';

/** Pure: the initramfs's /init. */
export function floorInit(): string {
  return `#!/bin/busybox sh\n/bin/busybox echo ${floorMarker}\n/bin/busybox poweroff -f\n`;
}

/** A newc cpio with busybox (the host's static one) and floorInit(), built by cpio. */
export async function floorInitramfs(dir: string, busybox = '/bin/busybox'): Promise<string> {
  const tree = join(dir, 'floor-root');
  await rm(tree, { recursive: true, force: true });
  await mkdir(join(tree, 'bin'), { recursive: true });
  await copyFile(busybox, join(tree, 'bin', 'busybox'));
  await chmod(join(tree, 'bin', 'busybox'), 0o755);
  await writeFile(join(tree, 'init'), floorInit(), { mode: 0o755 });
  const out = join(dir, 'floor.cpio');
  await run(['cpio', '--quiet', '-o', '-H', 'newc', '-O', out], { cwd: tree, input: '.\n./bin\n./bin/busybox\n./init\n' });
  await rm(tree, { recursive: true, force: true });
  return out;
}

/** The newest /boot/vmlinuz-* of an image, copied out with one read-only appliance launch. */
export async function imageKernel(image: string, dir: string): Promise<{ path: string; version: string }> {
  const session = await GuestSession.open([{ path: image, format: 'qcow2', readonly: true }], { accel: 'tcg', smp: 2 });
  try {
    await mountGuest(session, { readonly: true, inspect: false });
    const kernels = (await session.lines('ls', '/boot')).filter((f) => /^vmlinuz-/.test(f)).sort();
    const newest = kernels.at(-1);
    if (!newest) throw new Error(`${image}: no /boot/vmlinuz-*`);
    const path = join(dir, newest);
    await session.call('download', `/boot/${newest}`, path);
    return { path, version: newest.slice('vmlinuz-'.length) };
  } finally {
    await session.close();
  }
}

/** Pure: the floor boot's qemu argv. */
export function floorArgs(kernel: string, initrd: string): string[] {
  return [
    'qemu-system-x86_64', '-machine', 'pc', '-accel', 'tcg', '-cpu', 'Penryn', '-smp', '1', '-m', '1024',
    '-nodefaults', '-display', 'none', '-serial', 'stdio', '-no-reboot',
    '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 quiet',
  ];
}

/** One floor boot: ms from qemu's start to its exit, after the marker line came. */
export async function floorBoot(kernel: string, initrd: string): Promise<number> {
  const started = Date.now();
  const r = await run(floorArgs(kernel, initrd), { timeoutMs: 180_000 });
  const ms = Date.now() - started;
  if (!r.stdout.includes(floorMarker)) throw new Error(`the floor boot printed no ${floorMarker}:\n${r.stdout.slice(-1000)}`);
  return ms;
}
