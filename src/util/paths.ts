import { homedir } from 'node:os';
import { join } from 'node:path';

/** $XDG_CACHE_HOME/guestforge, default ~/.cache/guestforge. */
export function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'guestforge');
}
