/** Every profile shipped in profiles/, found by glob so that a new one is never left out of "every shipped profile". */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const profilesDir = resolve(import.meta.dirname, '..', '..', 'profiles');

export const shippedProfiles: { name: string; file: string }[] = readdirSync(profilesDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => ({ name: f.replace(/\.yaml$/, ''), file: join(profilesDir, f) }));
