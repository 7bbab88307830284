#!/usr/bin/env node
// Runs each test/*.test.ts in its own uvu process under tsx, prints each
// file's output and time, then "N passed, N failed"; fails when no test ran.
//   node scripts/run-tests.mjs [name ...]   only the files whose name contains one of these
//   node scripts/run-tests.mjs --serial     one file at a time
//
// The whole suite runs in two lanes, one per core: a TCG boot keeps about 1.3
// of the 2 cores busy, mmdebstrap and most guestfish work about one. Lane A
// builds the default image (e2e), rehearses it, then runs five guestfish files; lane
// B runs the other fast files, then the real-VM files that need only the
// cached base (libvirt, vrdma). Files of different lanes meet only in the stage cache, whose locks
// make a build wait for an entry the other lane is making.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';

const args = process.argv.slice(2);
const serial = args.includes('--serial');
const wanted = args.filter((a) => a !== '--serial');
const files = readdirSync('test')
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.includes(w)))
  .sort();

// Lane A, in this order; lane B: every other file, the slow ones last. Lane B's fast files
// fill the bootstrap's minutes (its VM files wait for the base); five guestfish files that need
// no base finish lane A, so that both lanes end together (the CI run of 2026-12-03 evening, with
// four of them: lane A ended 0.9 min before lane B; rehearse.test has since lost minutes of TCG,
// and hostile.test's 2.3 min moved here).
const laneA = ['e2e.test.ts', 'rehearse.test.ts', 'verify.test.ts', 'redhat.test.ts', 'guestfs.test.ts', 'outputs.test.ts', 'hostile.test.ts'];
const lastInB = ['libvirt.test.ts', 'vrdma.test.ts', 'layouts.test.ts'];
const rank = (f) => (lastInB.includes(f) ? 1 + lastInB.indexOf(f) : 0);
const lanes = serial || wanted.length > 0
  ? [files]
  : [laneA.filter((f) => files.includes(f)), files.filter((f) => !laneA.includes(f)).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))];

const started = Date.now();
const clock = () => `${((Date.now() - started) / 60_000).toFixed(1).padStart(5)} min`;

/** One file in its own process; its output is printed as one block when it ends, so lanes do not interleave. */
function runFile(file, lane) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    if (lanes.length > 1) process.stdout.write(`[${clock()}] lane ${lane}: ${file} started\n`);
    const pattern = `^${file.replaceAll('.', '\\.')}$`;
    const child = spawn(process.execPath, ['--import', 'tsx', 'node_modules/uvu/bin.js', 'test', pattern], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let all = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      all += d;
    });
    child.stderr.on('data', (d) => (all += d));
    child.on('close', (code) => {
      const fileTotal = Number(/Total:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
      const filePassed = Number(/Passed:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
      // A file that crashed before uvu's summary counts as one failure, and so does a file that ran
      // no test (its suite never started: a lost `.run()`, a bad filter).
      const crashed = (code !== 0 && filePassed === fileTotal) || fileTotal === 0;
      const seconds = (Date.now() - t0) / 1000;
      process.stdout.write(`${all}\n== ${file}: ${filePassed}/${fileTotal} passed${crashed ? (fileTotal === 0 ? ' (no test ran: a failure)' : ' (crashed)') : ''} in ${seconds.toFixed(1)} s${lanes.length > 1 ? ` (lane ${lane}, ended at ${clock().trim()})` : ''}\n`);
      resolve({ file, seconds, fileTotal, filePassed, crashed });
    });
  });
}

async function runLane(list, index) {
  const results = [];
  for (const file of list) results.push(await runFile(file, 'AB'[index]));
  return results;
}

const times = (await Promise.all(lanes.map(runLane))).flat();
let total = 0;
let passed = 0;
for (const t of times) {
  total += t.fileTotal + (t.crashed ? 1 : 0);
  passed += t.filePassed;
}

console.log('\ntest file times:');
for (const t of [...times].sort((a, b) => b.seconds - a.seconds)) {
  console.log(`  ${t.file.padEnd(24)} ${t.seconds.toFixed(1).padStart(7)} s  ${t.filePassed}/${t.fileTotal}${t.crashed ? (t.fileTotal === 0 ? ' no test ran' : ' crashed') : ''}`);
}
console.log(`  ${'total (wall)'.padEnd(24)} ${((Date.now() - started) / 1000).toFixed(1).padStart(7)} s${lanes.length > 1 ? ' in two lanes' : ''}`);
console.log(`${passed} passed, ${total - passed} failed`);
if (total === 0) {
  console.error('no tests ran: that is a failure');
  process.exit(1);
}
process.exit(passed === total ? 0 : 1);
