/** Pure readers of what verify reads in a guest: os-release, package databases, accounts, stat answers, boot loader files. */
import type { PackageDetail, PasswdEntry, PasswordState } from '../model/facts.ts';

/**
 * The kernel command lines a boot loader's files give: GRUB's defaults
 * (GRUB_CMDLINE_LINUX and _DEFAULT in /etc/default/grub and grub.d), the
 * first `linux` line of a generated grub.cfg (the default entry), BLS entries'
 * `options` (RHEL 8/9), grubenv's kernelopts and /etc/kernel/cmdline. Pure.
 */
export function kernelCmdlinesOf(files: { path: string; text: string }[]): { path: string; cmdline: string }[] {
  const out: { path: string; cmdline: string }[] = [];
  for (const { path, text } of files) {
    if (path.startsWith('/etc/default/grub')) {
      const parts = [...text.matchAll(/^\s*GRUB_CMDLINE_LINUX(?:_DEFAULT)?=(?:"([^"]*)"|'([^']*)'|(\S*))/gm)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
      if (parts.length) out.push({ path, cmdline: parts.join(' ').trim() });
    } else if (/\/grub2?\/grub\.cfg$/.test(path)) {
      const line = /^\s*linux(?:efi|16)?\s+\S+\s*(.*)$/m.exec(text);
      if (line) out.push({ path, cmdline: line[1]!.trim() });
    } else if (path.startsWith('/boot/loader/entries/')) {
      const line = /^options\s+(.*)$/m.exec(text);
      if (line) out.push({ path, cmdline: line[1]!.trim() });
    } else if (/grubenv$/.test(path)) {
      const line = /^kernelopts=(.*)$/m.exec(text);
      if (line) out.push({ path, cmdline: line[1]!.trim() });
    } else if (path === '/etc/kernel/cmdline') {
      out.push({ path, cmdline: text.trim() });
    }
  }
  return out;
}

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^["']|["']$/g, '');
  }
  return out;
}

/** Installed packages of a dpkg status file: version, architecture, and the source package (`Source: name (version)` when its version differs). */
export function parseDpkgPackages(text: string): Map<string, PackageDetail & { version: string }> {
  const packages = new Map<string, PackageDetail & { version: string }>();
  for (const stanza of text.split(/\n\n+/)) {
    const field = (f: string) => new RegExp(`^${f}: (.+)$`, 'm').exec(stanza)?.[1]?.trim();
    const name = field('Package');
    const version = field('Version');
    if (!name || !version || !field('Status')?.endsWith(' installed')) continue;
    const arch = field('Architecture');
    const source = field('Source');
    packages.set(name, {
      version,
      ...(arch ? { arch } : {}),
      // No Source field: the source package has the binary's name and version.
      source: source ? (/\(/.test(source) ? source.replace(/\s*\((.+)\)$/, ' $1') : `${source} ${version}`) : `${name} ${version}`,
    });
  }
  return packages;
}

function fieldState(field: string): PasswordState {
  return field === '' ? 'empty' : /^[!*]/.test(field) ? 'locked' : 'usable';
}

/** Pure: the first field and the password field of each account line, in order (comments and blank lines left out). */
function accountLines(text: string): [string, string][] {
  // glibc's files backend skips leading blanks, then blank and # lines.
  return text.split('\n').map((l) => l.trimStart()).filter((l) => l && !l.startsWith('#')).map((l) => l.split(':')).filter((f) => f.length >= 2).map((f) => [f[0]!, f[1]!]);
}

/**
 * Pure: each account's password as the system reads it. pam_unix takes the
 * passwd field unless it is `x`; then glibc's first shadow line for the name.
 * So a hash or an empty field in passwd wins over a locked shadow line. A name
 * on two lines of either file is `duplicate`. An `x` with no shadow line has no
 * entry (no password opens it).
 */
export function accountPasswords(passwdText: string, shadowText: string): Record<string, PasswordState> {
  const out: Record<string, PasswordState> = {};
  const shadow = new Map<string, string>();
  const twice = new Set<string>();
  for (const [name, field] of accountLines(shadowText)) {
    if (shadow.has(name)) twice.add(name);
    else shadow.set(name, field);
  }
  const seen = new Set<string>();
  for (const [name, field] of accountLines(passwdText)) {
    if (seen.has(name)) twice.add(name);
    seen.add(name);
    if (out[name] !== undefined) continue;
    if (field !== 'x') out[name] = fieldState(field);
    else if (shadow.has(name)) out[name] = fieldState(shadow.get(name)!);
  }
  for (const name of twice) out[name] = 'duplicate';
  return out;
}

/** Accounts as glibc reads them: leading blanks skipped; a line short of home and shell still names a uid (su then uses /bin/sh). */
export function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .map((l) => l.trimStart())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2] ?? ''))
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), home: f[5] ?? '', shell: f[6] ?? '' }));
}

/** guestfish prints stat structs as "field: value" lines. */
/** Pure: one numeric field (mode, uid, gid…) of guestfish's stat or statns answer. */
export function statField(text: string, name: string): number | undefined {
  const m = new RegExp(`^(?:st_)?${name}: (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** `rpm -qa` lines of NAME, VERSION-RELEASE, ARCH, SOURCERPM and LICENSE, tab-separated ("(none)" where rpm has no value). */
export function parseRpmQuery(stdout: string): Map<string, PackageDetail & { version: string }> {
  const packages = new Map<string, PackageDetail & { version: string }>();
  for (const line of stdout.split('\n')) {
    const [name, version, arch, sourceRpm, license] = line.trim().split('\t').map((v) => (v === '(none)' ? '' : v));
    if (!name || !version || name === 'gpg-pubkey') continue;
    const source = sourceRpm ? /^(.+)-([^-]+-[^-]+)\.src\.rpm$/.exec(sourceRpm) : null;
    packages.set(name, { version, ...(arch ? { arch } : {}), ...(source ? { source: `${source[1]} ${source[2]}` } : {}), ...(license ? { license } : {}) });
  }
  return packages;
}

/** Pure: guestfish's part-list answer as partition number, start and size in bytes. */
export function parsePartList(text: string): { num: number; start: number; size: number }[] {
  return text.split(/\n(?=\[\d+\] = \{)/).flatMap((block) => {
    const field = (name: string) => {
      const m = new RegExp(`^\\s*part_${name}: (\\d+)$`, 'm').exec(block);
      return m ? Number(m[1]) : undefined;
    };
    const [num, start, size] = [field('num'), field('start'), field('size')];
    return num !== undefined && start !== undefined && size !== undefined ? [{ num, start, size }] : [];
  });
}
