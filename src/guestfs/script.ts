/**
 * Many guestfish commands in one round trip: a script on the stdin of one
 * `guestfish --remote` client, instead of a client process per command (3,000
 * files of a hostile image once took verify 23 minutes that way). Each command
 * is prefixed with '-', so that its failure (a path through a loop of
 * symbolic links) ends neither the script nor the listener, and is followed by
 * an echo of a marker, so each command's output is cut out of the one stdout.
 * A failed command prints nothing: callers ask questions whose answers are
 * never empty (is-file, filesize, cat's text and the newline guestfish adds).
 */

/**
 * guestfish reads a script line into an 8 KiB buffer: the rest of a longer line
 * would run as a command of its own (and end the listener). A command whose
 * line is longer than this is not sent; it counts as failed.
 */
export const maxScriptLine = 4000;

const plain = /^[A-Za-z0-9/._,:=+@%-]$/;

/** Pure: one argument as a guestfish double-quoted string, every byte but a few plain ones as \xHH. */
export function fishQuote(arg: string): string {
  let out = '"';
  for (const byte of Buffer.from(arg, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += byte < 0x80 && plain.test(c) ? c : `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return `${out}"`;
}

/** Pure: the script that runs `commands`, each followed by `echo <marker><index>`. */
export function fishScript(commands: readonly (readonly string[])[], marker: string): string {
  return commands.map(([name, ...args], i) => {
    if (!name || !/^[a-z0-9-]+$/.test(name)) throw new Error(`fishScript: not a guestfish command: ${String(name)}`);
    const line = `-${name} ${args.map(fishQuote).join(' ')}`;
    return `${line.length <= maxScriptLine ? `${line}\n` : ''}echo ${marker}${i}\n`;
  }).join('');
}

/** Pure: each command's output, cut at the markers; fewer than `count` when the client or listener stopped before the end. */
export function splitScriptOutput(stdout: string, marker: string, count: number): string[] {
  const outputs: string[] = [];
  let at = 0;
  for (let i = 0; i < count; i += 1) {
    const end = `${marker}${i}\n`;
    const found = stdout.indexOf(end, at);
    if (found < 0) break;
    outputs.push(stdout.slice(at, found));
    at = found + end.length;
  }
  return outputs;
}
