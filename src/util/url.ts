/** Pure: a URL fit for logs, plan and manifests: user:password@ and the query string hidden. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password && !u.search) return url;
    return `${u.protocol}//${u.username || u.password ? '<redacted>@' : ''}${u.host}${u.pathname}${u.search ? '?<redacted>' : ''}`;
  } catch {
    return '<redacted: not a URL>';
  }
}

/**
 * Pure: any text (a command line, a log line) with every URL's user:password@
 * and query string hidden, for what is shown of commands that carry a URL
 * (mmdebstrap's mirror lines).
 */
export function redactUrlsIn(text: string): string {
  return text
    // Up to the last @ before the host's first /: a password may hold an unencoded @ or a quote.
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/]+@/gi, '$1<redacted>@')
    .replace(/\b(https?:\/\/[^\s?#'"]*)\?[^\s#'"]+/gi, '$1?<redacted>');
}
