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
