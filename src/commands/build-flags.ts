/** The build command's flags that resume shares (kept.json holds none of them): checked before anything starts, and turned back into a resume line. */
import { readFile } from 'node:fs/promises';
import { errorMessage, ExitCode, UsageError, UserError } from '../errors.ts';
import { howToReach, type KeptBuild } from '../debug/kept.ts';
import type { BreakPoint, BuildOptions, OnError } from '../model/build.ts';
import { stageNames } from '../model/stage.ts';

export type DebugOptions = Pick<BuildOptions, 'debugSshKey' | 'breakAt'> & { onError: OnError };

export function accelFlag(value: string | undefined, command: string): 'auto' | 'kvm' | 'tcg' | undefined {
  if (value !== undefined && value !== 'auto' && value !== 'kvm' && value !== 'tcg') throw new UsageError(`${command}: --accel must be auto, kvm or tcg, not "${value}"`);
  return value;
}

export function backendFlag(value: string | undefined, command: string): 'qemu' | 'libvirt' | undefined {
  if (value !== undefined && value !== 'qemu' && value !== 'libvirt') throw new UsageError(`${command}: --backend must be qemu or libvirt, not "${value}"`);
  return value;
}

/** What build and resume were told, as the flags that tell resume the same (kept.json holds none of it, --allow-host-path included). */
export interface RunFlags {
  outDir: string;
  smoke: boolean;
  signKey?: string | undefined;
  accel?: 'auto' | 'kvm' | 'tcg' | undefined;
  backend?: 'qemu' | 'libvirt' | undefined;
  connect?: string | undefined;
  pool?: string | undefined;
  /** --allow-host-path, as real paths (the loaded profile's). */
  allowHostPaths: readonly string[];
}

/** Pure: the resume line's flags for a build run with these. */
export function resumeFlags(f: RunFlags): string[] {
  return [
    '-o', f.outDir,
    ...(f.smoke ? [] : ['--no-smoke']),
    ...(f.signKey ? ['--sign-key', f.signKey] : []),
    ...(f.accel ? ['--accel', f.accel] : []),
    ...(f.backend ? ['--backend', f.backend] : []),
    ...(f.connect ? ['--connect', f.connect] : []),
    ...(f.pool ? ['--pool', f.pool] : []),
    ...f.allowHostPaths.flatMap((dir) => ['--allow-host-path', dir]),
  ];
}

/** --on-error, --debug-ssh-key, --break: checked before anything starts. */
export async function debugOptions(values: Values, backend: string | undefined): Promise<DebugOptions> {
  let onError = (values['on-error'] ?? 'cleanup') as string;
  if (onError !== 'cleanup' && onError !== 'keep' && onError !== 'ask') throw new UsageError(`build: --on-error must be cleanup, keep or ask, not "${onError}"`);
  if (onError === 'ask' && !(process.stdin.isTTY && process.stderr.isTTY)) {
    process.stderr.write('--on-error ask: no terminal to ask on, so the build is cleaned up on failure (--on-error keep keeps it without asking)\n');
    onError = 'cleanup';
  }
  if (onError !== 'cleanup' && backend === 'libvirt') {
    throw new UsageError(`build: --on-error ${onError} keeps the build VM running for you, which the qemu backend does; libvirt's build VMs are not kept yet`, { hint: 'add --backend qemu for the look inside' });
  }
  const keyFile = typeof values['debug-ssh-key'] === 'string' ? values['debug-ssh-key'] : undefined;
  let debugSshKey: string | undefined;
  if (keyFile !== undefined) {
    if ((values['on-error'] ?? 'cleanup') === 'cleanup') throw new UsageError('build: --debug-ssh-key is for a build VM kept after a failure: add --on-error keep (or ask)');
    debugSshKey = parsePublicKey(await readFile(keyFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new UsageError(`build: --debug-ssh-key ${keyFile}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
    }), keyFile);
  }
  const breakText = typeof values.break === 'string' ? values.break : undefined;
  let breakAt: BreakPoint | undefined;
  if (breakText !== undefined) {
    const m = /^(before|after):([a-z]+)$/.exec(breakText);
    if (!m || !(stageNames as readonly string[]).includes(m[2]!)) {
      throw new UsageError(`build: --break takes before:STAGE or after:STAGE, not "${breakText}"`, { hint: `stages: ${stageNames.join(', ')}` });
    }
    breakAt = { when: m[1] as 'before' | 'after', stage: m[2] as (typeof stageNames)[number] };
  }
  return { onError: onError as OnError, ...(debugSshKey ? { debugSshKey } : {}), ...(breakAt ? { breakAt } : {}) };
}

/** One OpenSSH public key line; a private key or anything else is refused, naming the file. */
export function parsePublicKey(text: string, file: string): string {
  if (/PRIVATE KEY/.test(text)) throw new UsageError(`build: --debug-ssh-key ${file} is a private key`, { hint: `give its public half (${file}.pub)` });
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const key = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [\x20-\x7e]*)?$/;
  if (lines.length !== 1 || !key.test(lines[0]!)) {
    throw new UsageError(`build: --debug-ssh-key ${file}: expected one OpenSSH public key line (ssh-ed25519 AAAA… comment)`);
  }
  return lines[0]!;
}

/** After a build was kept: what was kept and how to get in, as the end of the error's hint (or the output of a --break). */
export function keptLines(kept: KeptBuild, running: boolean, flags: RunFlags): string[] {
  const head = kept.reason === 'break'
    ? `stopped before ${kept.stage}, as --break asked; kept as ${kept.id}:`
    : `the build is kept as ${kept.id}${running ? ' with its build VM running' : ''}:`;
  return [head, ...howToReach(kept, running, resumeFlags(flags))];
}

export type Values = Record<string, string | boolean | string[] | undefined>;

/** The failure's message stays; what was kept and how to get in ends its hint. */
export function withKeptHint(error: unknown, lines: string[]): UserError {
  const user = error instanceof UserError ? error : undefined;
  return new UserError(errorMessage(error), {
    hint: [...(user?.hint ? [user.hint] : []), ...lines].join('\n'),
    exitCode: user?.exitCode ?? ExitCode.failure,
    cause: error,
  });
}
