/** SSH from the host into a rehearsal VM as the job owner, through qemu's forwarded loopback port. */
import { join } from 'node:path';
import { run, type RunResult } from '../exec/run.ts';

export interface SshTarget {
  port: number;
  user: string;
  key: string;
}

/** A fresh ed25519 key pair (no passphrase) in dir; returns the private key's path and the public key line. */
export async function makeKeyPair(dir: string, comment: string): Promise<{ key: string; publicKey: string }> {
  const key = join(dir, 'id_ed25519');
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', key]);
  const { readFile } = await import('node:fs/promises');
  return { key, publicKey: (await readFile(`${key}.pub`, 'utf8')).trim() };
}

/** Pure: the ssh argv. Host keys are made at this boot, so there is nothing to pin them to. */
export function sshArgs(target: SshTarget, command: string, connectTimeoutS = 5): string[] {
  return [
    'ssh', '-F', 'none', '-i', target.key, '-p', String(target.port),
    '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'LogLevel=ERROR', '-o', `ConnectTimeout=${connectTimeoutS}`,
    `${target.user}@127.0.0.1`, command,
  ];
}

export function ssh(target: SshTarget, command: string, timeoutMs: number): Promise<RunResult> {
  return run(sshArgs(target, command), { allowFailure: true, timeoutMs });
}
