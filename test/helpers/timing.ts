/**
 * Prints each test's wall time to stderr (uvu prints only counts), so a slow
 * real-VM test shows up in the suite's output and in CI logs.
 */
import type { Test } from 'uvu';

export function timed<T>(s: Test<T>): Test<T> {
  let started = 0;
  s.before.each(() => {
    started = Date.now();
  });
  s.after.each((context) => {
    const name = (context as { __test__?: string }).__test__ ?? '?';
    process.stderr.write(`\n  [${((Date.now() - started) / 1000).toFixed(1)} s] ${name}\n`);
  });
  return s;
}
