/** Every profile shipped in profiles/, found by glob so that a new one is never left out of "every shipped profile". */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const profilesDir = resolve(import.meta.dirname, '..', '..', 'profiles');

/** Folders outside profiles/ a shipped profile reads, as its admin allows them (--allow-host-path): osv-native's base is in shared/osv beside the checkout. */
const allowedFor: Record<string, string[]> = { 'osv-native': [resolve(profilesDir, '..', '..', 'shared', 'osv')] };

export const shippedProfiles: { name: string; file: string; allowHostPaths: string[] }[] = readdirSync(profilesDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => f.replace(/\.yaml$/, ''))
  .map((name) => ({ name, file: join(profilesDir, `${name}.yaml`), allowHostPaths: allowedFor[name] ?? [] }));
