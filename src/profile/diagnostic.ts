/** A problem in a profile, located in the file that wrote the offending field. */
export interface Location {
  file: string;
  line: number;
  col: number;
}

export interface Diagnostic {
  location: Location;
  /** Field path, e.g. ["disk", "size"]. */
  path: readonly (string | number)[];
  message: string;
  hint?: string;
}

/**
 * A key as a message may show it. A file named by `extends` may be no
 * profile at all (/etc/shadow): its "keys" would be its content, so only
 * what looks like a key is quoted.
 */
export function shownKey(key: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$.-]{0,63}$/.test(key) ? key : `<a ${key.length}-character key, not shown>`;
}

export function formatPath(path: readonly (string | number)[]): string {
  return path.reduce<string>(
    (text, part) => (typeof part === 'number' ? `${text}[${part}]` : text ? `${text}.${shownKey(part)}` : shownKey(part)),
    '',
  );
}

/** `profiles/hpc.yaml:4:11 disk.size: expected a size like 8G` (+ an indented hint). */
export function formatDiagnostic(d: Diagnostic): string {
  const where = `${d.location.file}:${d.location.line}:${d.location.col}`;
  const field = d.path.length > 0 ? ` ${formatPath(d.path)}:` : '';
  return `${where}${field} ${d.message}${d.hint ? `\n    hint: ${d.hint}` : ''}`;
}
