/**
 * Guest paths from profiles and cluster descriptions, which may come from
 * elsewhere: what a path may look like before it reaches a shell line, a
 * guestfish call or a mount, and which guest folders nothing of ours may
 * touch. The schemas refine with these, so a bad path is refused at
 * validate with its file, line and field.
 */

/** The guest's own system folders: no app, workspace, apps folder or mount goes in them. */
export const systemDirs = [
  '/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/proc', '/root', '/run', '/sbin', '/sys',
  '/usr/bin', '/usr/include', '/usr/lib', '/usr/lib32', '/usr/lib64', '/usr/libexec', '/usr/sbin', '/usr/share',
  '/var/cache', '/var/lib', '/var/log', '/var/spool',
];
/** Folders fine to go under but not to be: `/usr` itself, `/var` itself. */
const systemExact = ['/', '/usr', '/var'];
/** Shared folders an app root or a layout folder must not be (a mount may be). */
const sharedExact = ['/srv', '/tmp', '/var/tmp', '/home', '/mnt', '/media'];

/** Letters, digits and . _ + @ - between slashes: nothing a shell, guestfish or qemu reads specially. */
const safePath = /^\/[A-Za-z0-9._+@/-]*$/;

/** Pure: is `path` the folder `dir` or inside it (both plain absolute paths). */
export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir.replace(/\/$/, '')}/`);
}

/**
 * Pure: what is wrong with a guest path as written, or undefined. `placeholders`
 * are `{name}` words the path may hold (replaced later by plain names).
 */
export function guestPathProblem(path: string, options: { placeholders?: string[] } = {}): string | undefined {
  const allowed = options.placeholders ?? [];
  const found = path.match(/\{[^}/]*\}?/g) ?? [];
  const unknown = found.find((p) => !allowed.includes(p));
  if (unknown) return allowed.length ? `unknown placeholder ${unknown}: only ${allowed.join(', ')} is replaced` : `"${unknown}" is not allowed in a guest path`;
  const plain = found.reduce((p, ph) => p.replaceAll(ph, 'x'), path);
  if (!safePath.test(plain)) return `expected an absolute guest path of letters, digits, ".", "_", "+", "@", "-" and "/", got ${JSON.stringify(path)}`;
  if (plain.split('/').slice(1).some((x) => x === '' || x === '.' || x === '..')) return 'expected a plain path: no "//", "." or ".." segments, no trailing "/"';
  return undefined;
}

/**
 * Pure: the system folder `path` is or is inside, for a message; undefined
 * when it is neither. `shared` also refuses being /home, /tmp, /srv… itself.
 */
export function systemPlace(path: string, options: { shared?: boolean } = {}): string | undefined {
  const inside = systemDirs.find((d) => isUnder(path, d));
  if (inside) return inside;
  if (systemExact.includes(path)) return path;
  return options.shared && sharedExact.includes(path) ? path : undefined;
}
