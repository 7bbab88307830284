/**
 * The one shell quoting helper. Every value that reaches a shell line (the
 * build VM's runcmd, guestfish `sh`, smoke and rehearsal checks, a pasted
 * command in an error) goes through these; validation narrows values first,
 * quoting makes any left-over character harmless.
 */

/** One single-quoted shell word, always quoted. */
export function shellWord(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** argv as a POSIX shell line: plain words stay plain, the rest single-quoted. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : shellWord(arg))).join(' ');
}
