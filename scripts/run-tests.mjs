#!/usr/bin/env node
// Runs each test/*.test.ts in its own uvu process under tsx, prints each
// file's count and time, then "N passed, N failed"; fails when no test ran.
//   node scripts/run-tests.mjs [name ...]   only the files whose name contains one of these
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const wanted = process.argv.slice(2);
const files = readdirSync('test')
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.includes(w)))
  .sort();

let total = 0;
let passed = 0;
const times = [];
const started = Date.now();
for (const file of files) {
  const t0 = Date.now();
  const pattern = `^${file.replaceAll('.', '\\.')}$`;
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'node_modules/uvu/bin.js', 'test', pattern], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  process.stdout.write(result.stdout);
  const fileTotal = Number(/Total:\s+(\d+)/.exec(result.stdout)?.[1] ?? 0);
  const filePassed = Number(/Passed:\s+(\d+)/.exec(result.stdout)?.[1] ?? 0);
  // A file that crashed before uvu's summary counts as one failure.
  const crashed = result.status !== 0 && filePassed === fileTotal;
  total += fileTotal + (crashed ? 1 : 0);
  passed += filePassed;
  const seconds = (Date.now() - t0) / 1000;
  times.push({ file, seconds, fileTotal, filePassed, crashed });
  console.log(`== ${file}: ${filePassed}/${fileTotal} passed${crashed ? ' (crashed)' : ''} in ${seconds.toFixed(1)} s`);
}

console.log('\ntest file times:');
for (const t of [...times].sort((a, b) => b.seconds - a.seconds)) {
  console.log(`  ${t.file.padEnd(24)} ${t.seconds.toFixed(1).padStart(7)} s  ${t.filePassed}/${t.fileTotal}${t.crashed ? ' crashed' : ''}`);
}
console.log(`  ${'total'.padEnd(24)} ${((Date.now() - started) / 1000).toFixed(1).padStart(7)} s`);
console.log(`${passed} passed, ${total - passed} failed`);
if (total === 0) {
  console.error('no tests ran: that is a failure');
  process.exit(1);
}
process.exit(passed === total ? 0 : 1);
