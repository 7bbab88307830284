/**
 * Signing an output folder: a detached, armored gpg signature of
 * SHA256SUMS (SHA256SUMS.asc), which covers every file SHA256SUMS lists
 * (images, manifests, SBOMs, provenance). gpg because it is what Debian's and
 * RPM repositories, apt and dnf already use: admins have keys, smartcards
 * and HSMs work through gpg-agent, and a node checks with gpgv, which every
 * Debian system has. Checking imports the given public key into a throwaway
 * keyring, so the admin's own keyring is never read or changed.
 */
import { chmod, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError, UserError } from '../errors.ts';
import { run } from '../exec/run.ts';
import { sha256File, tempPathFor } from '../util/fs.ts';

export const sumsFile = 'SHA256SUMS';
export const signatureFile = 'SHA256SUMS.asc';

/** A key id, fingerprint or user id, and nothing gpg could read as an option. */
function checkKeyName(key: string, option: string): void {
  if (!/^[A-Za-z0-9@._+<> -]{1,200}$/.test(key) || key.startsWith('-')) throw new UsageError(`${option} ${JSON.stringify(key)}: expected a key id, fingerprint or user id`);
}

/** Before a build: the key must be in the keyring with its secret part, or the build would fail at its very end. */
export async function checkSigningKey(key: string): Promise<void> {
  checkKeyName(key, '--sign-key');
  const r = await run(['gpg', '--batch', '--with-colons', '--list-secret-keys', key], { allowFailure: true, timeoutMs: 60_000 });
  if (r.exitCode !== 0 || !/^sec:/m.test(r.stdout)) {
    throw new UsageError(`--sign-key ${key}: no such secret key in ${process.env.GNUPGHOME ?? '~/.gnupg'}`, { hint: 'gpg --list-secret-keys shows the keys there; GNUPGHOME picks another keyring' });
  }
  // A key that needs a passphrase nobody can type (no terminal, nothing in gpg-agent) is found now, not after the build.
  const dir = await mkdtemp(join(tmpdir(), 'guestforge-signcheck-'));
  try {
    await writeFile(join(dir, 'probe'), 'guestforge signing check\n');
    const probe = await run(['gpg', '--batch', '--yes', '--local-user', key, '--detach-sign', '--output', join(dir, 'probe.sig'), join(dir, 'probe')], { allowFailure: true, timeoutMs: 60_000 });
    if (probe.exitCode !== 0) {
      throw new UsageError(`--sign-key ${key}: gpg cannot sign with it here: ${probe.stderr.trim().split('\n').at(-1) ?? `exit ${probe.exitCode}`}`, { hint: 'a key with a passphrase needs gpg-agent to hold it when there is no terminal (gpg-preset-passphrase)' });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Signs DIR/SHA256SUMS with the key named (id, fingerprint or user id in the caller's keyring); returns the signature's path. */
export async function signSums(dir: string, key: string): Promise<string> {
  // A build checked the key before it started (checkSigningKey); a failure here says why with gpg's words.
  checkKeyName(key, '--key');
  const sums = join(dir, sumsFile);
  if (!(await stat(sums).catch(() => undefined))?.isFile()) throw new UsageError(`${sums}: no SHA256SUMS to sign`, { hint: 'sign a folder a build wrote' });
  const target = join(dir, signatureFile);
  const temp = tempPathFor(target);
  try {
    const r = await run(['gpg', '--batch', '--yes', '--local-user', key, '--armor', '--detach-sign', '--output', temp, sums], { allowFailure: true, timeoutMs: 120_000 });
    if (r.exitCode !== 0) {
      const why = r.stderr.split('\n').filter((l) => l.trim()).slice(-3).join('; ');
      throw new UserError(`gpg could not sign ${sums} with ${key}: ${why}`, {
        hint: /No secret key|unusable secret key/i.test(r.stderr)
          ? `no secret key for ${key} in ${process.env.GNUPGHOME ?? '~/.gnupg'} (gpg --list-secret-keys; GNUPGHOME picks another keyring)`
          : 'a key with a passphrase needs gpg-agent to have it (gpg-preset-passphrase) when there is no terminal',
      });
    }
    await rename(temp, target);
  } finally {
    await rm(temp, { force: true });
  }
  return target;
}

export interface SignatureCheck {
  ok: boolean;
  /** The signing key's fingerprint when the signature is good. */
  signer?: string;
  signatureProblem?: string;
  files: { file: string; status: 'ok' | 'changed' | 'missing' }[];
}

/** Lines of SHA256SUMS: "<64 hex>  name" or "<64 hex> *name"; anything else is refused (names must stay inside the folder). */
export function parseSums(text: string, origin: string): { file: string; sha256: string }[] {
  return text.split('\n').filter((l) => l.trim()).map((line, i) => {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m || m[2]!.includes('/') || m[2] === '.' || m[2] === '..') throw new UserError(`${origin}:${i + 1}: not a SHA256SUMS line of a file in this folder: ${JSON.stringify(line.slice(0, 120))}`);
    return { file: m[2]!, sha256: m[1]! };
  });
}

/** Checks DIR/SHA256SUMS.asc against the public key file, then every file SHA256SUMS lists. */
export async function verifySignature(dir: string, publicKey: string): Promise<SignatureCheck> {
  const sums = join(dir, sumsFile);
  const signature = join(dir, signatureFile);
  for (const f of [sums, signature, publicKey]) {
    if (!(await stat(f).catch(() => undefined))?.isFile()) throw new UsageError(`${f}: no such file`, { hint: f === signature ? 'sign the folder first: guestforge sign DIR --key K' : undefined });
  }
  const home = await mkdtemp(join(tmpdir(), 'guestforge-gpg-'));
  let signer: string | undefined;
  let signatureProblem: string | undefined;
  try {
    await chmod(home, 0o700);
    const env = { GNUPGHOME: home };
    const imported = await run(['gpg', '--batch', '--import', publicKey], { env, allowFailure: true, timeoutMs: 60_000 });
    if (imported.exitCode !== 0) throw new UsageError(`${publicKey}: gpg could not import it as a public key: ${imported.stderr.trim().split('\n').at(-1)}`);
    const checked = await run(['gpg', '--batch', '--status-fd', '1', '--verify', signature, sums], { env, allowFailure: true, timeoutMs: 60_000 });
    signer = /^\[GNUPG:\] VALIDSIG ([0-9A-F]+) /m.exec(checked.stdout)?.[1];
    if (checked.exitCode !== 0 || !signer) {
      signatureProblem = /^\[GNUPG:\] BADSIG /m.test(checked.stdout)
        ? `${signatureFile} does not match ${sumsFile}: SHA256SUMS was changed after it was signed`
        : /^\[GNUPG:\] NO_PUBKEY /m.test(checked.stdout)
          ? `${signatureFile} was made by a key that is not ${publicKey}`
          : `gpg could not check ${signatureFile}: ${checked.stderr.trim().split('\n').at(-1) ?? `exit ${checked.exitCode}`}`;
      signer = undefined;
    }
  } finally {
    await rm(home, { recursive: true, force: true });
  }
  const files: SignatureCheck['files'] = [];
  for (const { file, sha256 } of parseSums(await readFile(sums, 'utf8'), sums)) {
    const path = join(dir, file);
    const st = await stat(path).catch(() => undefined);
    files.push({ file, status: !st?.isFile() ? 'missing' : (await sha256File(path)) === sha256 ? 'ok' : 'changed' });
  }
  return { ok: !signatureProblem && files.every((f) => f.status === 'ok'), ...(signer ? { signer } : {}), ...(signatureProblem ? { signatureProblem } : {}), files };
}
