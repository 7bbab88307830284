#!/usr/bin/env node
// Runs every test/*.test.ts under uvu with tsx, prints "N passed, N failed",
// and fails when no test ran at all.
import { spawnSync } from 'node:child_process';

const result = spawnSync(process.execPath, ['--import', 'tsx', 'node_modules/uvu/bin.js', 'test', '\\.test\\.ts$'], {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
});
process.stdout.write(result.stdout);
const total = Number(/Total:\s+(\d+)/.exec(result.stdout)?.[1] ?? 0);
const passed = Number(/Passed:\s+(\d+)/.exec(result.stdout)?.[1] ?? 0);
console.log(`${passed} passed, ${total - passed} failed`);
if (total === 0) {
  console.error('no tests ran: that is a failure');
  process.exit(1);
}
process.exit(result.status === 0 && passed === total ? 0 : 1);
