/**
 * A mirror's `user:password@` goes to apt through an auth file
 * (apt_auth.conf(5)), never through a command line (`ps` shows those) nor
 * into the image's sources: the URL apt is given has no credentials, and the
 * file that has them is removed before the tree or the disk is kept.
 */
import { UserError } from '../../errors.ts';
import { redactUrl } from '../../util/url.ts';

/**
 * Where apt finds the credentials, in the bootstrap's tree and in the build VM:
 * Dir::Etc::netrcparts, read by the default configuration, so no setting names it.
 */
export const aptAuthPath = '/etc/apt/auth.conf.d/90guestforge-mirror.conf';

/** A mirror URL as apt is given it, and the auth file's line for its credentials (none without). */
export interface SplitUrl {
  url: string;
  auth?: string;
}

/**
 * Pure: a URL split into the URL without `user:password@` and its
 * apt_auth.conf(5) line. A URL without credentials comes back as written. The
 * machine names the scheme (without one apt matches https only), the port when
 * the URL has one (apt then requires it) and the path with a closing slash, so
 * that `/debian` does not also match `/debian-security` on the same host.
 */
export function splitMirrorUrl(url: string): SplitUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url };
  }
  if (!u.username && !u.password) return { url };
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return undefined;
    }
  };
  const login = decode(u.username);
  const password = decode(u.password);
  // The file is tokens between blanks, with no quoting: a blank would end the word.
  if (!login || password === undefined || /[\s\0]/.test(login) || /[\s\0]/.test(password)) {
    throw new UserError(`the mirror ${redactUrl(url)} has a user name or password that apt's auth file cannot hold`, {
      hint: 'apt_auth.conf(5) takes a non-empty user name and a password without spaces, tabs or newlines',
    });
  }
  u.username = '';
  u.password = '';
  const path = u.pathname.endsWith('/') ? u.pathname : `${u.pathname}/`;
  return { url: u.href, auth: `machine ${u.protocol}//${u.host}${path} login ${login}${password ? ` password ${password}` : ''}` };
}

/** apt source lines without credentials, and the auth file for them ('' when no line has any). */
export interface SplitSources {
  lines: string[];
  auth: string;
}

/** Pure: one-line apt sources (`deb URI SUITE COMPONENTS…`) split as splitMirrorUrl splits each URI. */
export function splitSourceLines(lines: readonly string[]): SplitSources {
  const auth = new Set<string>();
  const plain = lines.map((line) => {
    const m = /^(deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?)(\S+)(.*)$/.exec(line);
    if (!m) return line;
    const split = splitMirrorUrl(m[2]!);
    if (!split.auth) return line;
    auth.add(split.auth);
    return `${m[1]}${split.url}${m[3]}`;
  });
  return { lines: plain, auth: auth.size ? `${[...auth].join('\n')}\n` : '' };
}
