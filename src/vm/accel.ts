/**
 * Which accelerator qemu and libguestfs may use. /dev/kvm existing proves
 * little: on nested hosts a KVM guest can hang once Linux starts, while a
 * boot-sector probe still passes. So the probe boots a real Linux kernel under
 * KVM and trusts KVM only if the kernel's own panic (no root fs) reaches the
 * serial port before a short deadline. The verdict is cached per host boot.
 */
import { constants } from 'node:fs';
import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../errors.ts';
import { start } from '../exec/run.ts';
import { cacheDir } from '../util/paths.ts';
import { writeFileAtomic } from '../util/fs.ts';

export type Accel = 'kvm' | 'tcg';

export interface AccelVerdict {
  accel: Accel;
  kvmPresent: boolean;
  kvmUsable: boolean;
  reason: string;
  kernel?: string;
  probeMs?: number;
  bootId?: string;
  cached?: boolean;
}

export const probeDeadlineMs = 12_000;

/** Pure: the qemu arguments for an accelerator. */
export function qemuAccelArgs(accel: Accel, cpuModel?: string): string[] {
  return accel === 'kvm' ? ['-accel', 'kvm', '-cpu', cpuModel ?? 'host'] : ['-accel', 'tcg', '-cpu', cpuModel ?? 'max'];
}

/** Pure: the environment every libguestfs child gets. */
export function guestfsEnv(accel: Accel): Record<string, string> {
  const env: Record<string, string> = { LIBGUESTFS_BACKEND: 'direct' };
  if (accel === 'tcg') env.LIBGUESTFS_BACKEND_SETTINGS = 'force_tcg';
  return env;
}

export async function findProbeKernel(bootDir = '/boot'): Promise<string | undefined> {
  const names = await readdir(bootDir).catch(() => [] as string[]);
  const kernels = names.filter((n) => n.startsWith('vmlinuz-')).sort((a, b) => b.localeCompare(a, undefined, { numeric: true }));
  return kernels[0] ? join(bootDir, kernels[0]) : undefined;
}

/** Boot `kernel` with `accel`; ok only if its panic reached the serial port in time. */
export async function bootProbeKernel(kernel: string, accel: Accel, deadlineMs: number): Promise<{ ok: boolean; reason: string; ms: number }> {
  const name = accel.toUpperCase();
  const started = Date.now();
  let output = '';
  const child = start(
    ['qemu-system-x86_64', ...qemuAccelArgs(accel), '-m', '256', '-nodefaults', '-display', 'none',
      '-no-reboot', '-serial', 'stdio', '-kernel', kernel, '-append', 'console=ttyS0 panic=-1 loglevel=4'],
    { timeoutMs: deadlineMs },
  );
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('latin1');
    if (/Kernel panic|VFS: Unable to mount root/.test(output)) child.kill('SIGKILL');
  });
  const result = await child;
  const ms = Date.now() - started;
  if (/Kernel panic|VFS: Unable to mount root/.test(output)) {
    return { ok: true, reason: `a Linux kernel booted under ${name} to its panic in ${(ms / 1000).toFixed(1)}s`, ms };
  }
  if (result.timedOut || ms >= deadlineMs) {
    const seen = /Linux version/.test(output) ? 'the kernel started, then went silent' : 'no kernel output at all';
    return { ok: false, reason: `a Linux kernel under ${name} hung (${seen} within ${deadlineMs / 1000}s)`, ms };
  }
  const err = typeof result.stderr === 'string' ? result.stderr.trim().split('\n').pop() : '';
  return { ok: false, reason: `qemu with ${name} failed: ${err || `exit ${result.exitCode}`}`, ms };
}

async function readBootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();
}

export async function probeAccel(options: { refresh?: boolean; cache?: string } = {}): Promise<AccelVerdict> {
  const cacheFile = join(options.cache ?? cacheDir(), 'accel.json');
  const bootId = await readBootId();
  if (!options.refresh) {
    const cached = await readFile(cacheFile, 'utf8').then((t) => JSON.parse(t) as AccelVerdict, () => undefined);
    if (cached && cached.bootId === bootId && bootId !== 'unknown') return { ...cached, cached: true };
  }
  const verdict = await probeUncached();
  await writeFileAtomic(cacheFile, `${JSON.stringify({ ...verdict, bootId }, null, 2)}\n`).catch(() => undefined);
  return { ...verdict, bootId, cached: false };
}

async function probeUncached(): Promise<AccelVerdict> {
  const kvmPresent = await access('/dev/kvm', constants.R_OK | constants.W_OK).then(() => true, () => false);
  if (!kvmPresent) return { accel: 'tcg', kvmPresent, kvmUsable: false, reason: '/dev/kvm is missing or not accessible' };
  const kernel = await findProbeKernel();
  if (!kernel) {
    return {
      accel: 'tcg', kvmPresent, kvmUsable: false,
      reason: 'no kernel in /boot to probe KVM with (apt-get install linux-image-amd64); assuming TCG',
    };
  }
  const probe = await bootProbeKernel(kernel, 'kvm', probeDeadlineMs);
  return { accel: probe.ok ? 'kvm' : 'tcg', kvmPresent, kvmUsable: probe.ok, reason: probe.reason, kernel, probeMs: probe.ms };
}

/** Apply the profile's or command line's wish to the probe's verdict. */
export function chooseAccel(wanted: 'auto' | Accel, verdict: AccelVerdict): Accel {
  if (wanted === 'tcg') return 'tcg';
  if (wanted === 'kvm' && !verdict.kvmUsable) {
    throw new UsageError(`KVM was asked for, but it is not usable here: ${verdict.reason}`, {
      hint: 'use --accel tcg (or accel: auto in the profile)',
    });
  }
  return verdict.kvmUsable ? 'kvm' : 'tcg';
}
