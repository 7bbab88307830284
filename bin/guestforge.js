#!/usr/bin/env node
// An installed package runs the JavaScript tsc wrote at `npm pack` (lib/):
// no TypeScript compile at start. A checkout has no lib/ and runs the
// sources through tsx, so there is no build step to forget while developing.
import { existsSync } from 'node:fs';

const compiled = new URL('../lib/cli.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
