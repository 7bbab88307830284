/**
 * Text from elsewhere (a guest's console, a program's stderr quoting a hostile image's
 * paths) shown on a terminal or kept in a log: terminal escape sequences and control
 * characters taken out, so it cannot move the cursor, retitle the window or hide a line.
 */
const escapes = /\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]/g;

/** Pure: `text` without escape sequences and control characters; tabs and line breaks stay. */
export function withoutControls(text: string): string {
  return text.replace(escapes, '');
}
