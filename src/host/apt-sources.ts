/**
 * The host's Debian mirrors, read from its apt sources (deb822 *.sources and
 * one-line *.list), so no mirror host name is ever written into guestforge.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';

export interface AptSource {
  uri: string;
  suite: string;
  components: string[];
}

export function parseDeb822(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && last) fields.set(last, `${fields.get(last)} ${raw.trim()}`);
      const m = /^([\w-]+):\s*(.*)$/.exec(raw);
      if (m) {
        last = m[1]!.toLowerCase();
        fields.set(last, m[2]!.trim());
      }
    }
    if (fields.get('enabled')?.toLowerCase() === 'no') continue;
    if (!(fields.get('types') ?? '').split(/\s+/).includes('deb')) continue;
    const components = (fields.get('components') ?? 'main').split(/\s+/).filter(Boolean);
    for (const uri of (fields.get('uris') ?? '').split(/\s+/).filter(Boolean)) {
      for (const suite of (fields.get('suites') ?? '').split(/\s+/).filter(Boolean)) sources.push({ uri, suite, components });
    }
  }
  return sources;
}

export function parseOneLine(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (m) sources.push({ uri: m[1]!, suite: m[2]!, components: (m[3] || 'main').split(/\s+/).filter(Boolean) });
  }
  return sources;
}

export async function readHostSources(root = '/etc/apt'): Promise<AptSource[]> {
  const sources: AptSource[] = [];
  const main = await readFile(join(root, 'sources.list'), 'utf8').catch(() => '');
  sources.push(...parseOneLine(main));
  const dir = join(root, 'sources.list.d');
  for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
    const text = await readFile(join(dir, name), 'utf8').catch(() => '');
    if (name.endsWith('.sources')) sources.push(...parseDeb822(text));
    else if (name.endsWith('.list')) sources.push(...parseOneLine(text));
  }
  return sources;
}

/** Debian's stable codenames and the release each is: os.release is checked against the suite, and `mirror: auto` carries one to another. */
export const debianReleases: Readonly<Record<string, string>> = { buster: '10', bullseye: '11', bookworm: '12', trixie: '13', forky: '14' };

function companions(suite: string): string[] {
  return [suite, `${suite}-updates`, `${suite}-security`];
}

/**
 * One-line apt sources for a suite and its -updates/-security companions.
 * A Debian suite the host does not name comes from the host's Debian archive:
 * the lines of the Debian release the host uses (bookworm, bookworm-updates,
 * bookworm-security) are carried over to it (trixie, trixie-updates,
 * trixie-security), since one archive serves every release.
 */
export function linesForSuite(sources: AptSource[], suite: string): string[] {
  const lineOf = (s: AptSource) => `deb ${s.uri} ${s.suite} ${s.components.filter((c) => ['main', 'contrib', 'non-free', 'non-free-firmware'].includes(c)).join(' ') || 'main'}`;
  const wanted = new Set(companions(suite));
  const own = sources.filter((s) => wanted.has(s.suite));
  const hostRelease = sources.map((s) => s.suite).find((s) => s in debianReleases && s !== suite);
  const carried = !own.some((s) => s.suite === suite) && suite in debianReleases && hostRelease
    ? sources.filter((s) => companions(hostRelease).includes(s.suite)).map((s) => ({ ...s, suite: s.suite.replace(hostRelease, suite) }))
    : own;
  return [...new Set(carried.map(lineOf))];
}

/** The mirror lines for bootstrapping `suite`: the profile's mirror, else the host's. */
export async function mirrorLines(suite: string, mirror: string, root = '/etc/apt'): Promise<string[]> {
  if (mirror !== 'auto') return [`deb ${mirror} ${suite} main`];
  const lines = linesForSuite(await readHostSources(root), suite);
  if (!lines.some((l) => l.split(' ')[2] === suite)) {
    throw new UserError(`the host's apt sources have no entry for suite "${suite}", nor for a Debian release to take its archive from`, {
      hint: `set base.bootstrap.mirror in the profile to a Debian mirror URL (known releases: ${Object.keys(debianReleases).join(', ')})`,
    });
  }
  // The base suite first: mmdebstrap reads the suite's Release from the first line.
  return lines.sort((a, b) => Number(b.split(' ')[2] === suite) - Number(a.split(' ')[2] === suite));
}
