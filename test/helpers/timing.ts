/**
 * Prints each test's wall time to stderr (uvu prints only counts), so a slow
 * real-VM test shows up in the suite's output and in CI logs. A failing
 * test's error hint is printed too (uvu prints only the message): for a
 * failed command, the command and the last lines it wrote.
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
  const withHints = ((name: string, handler: (context: T) => unknown) =>
    s(name, async (context) => {
      try {
        await handler(context);
      } catch (error) {
        const hint = error instanceof Error ? (error as Error & { hint?: unknown }).hint : undefined;
        if (typeof hint === 'string' && hint) process.stderr.write(`\n  ${name} failed: ${(error as Error).message}\n  ${hint.replace(/\n/g, '\n  ')}\n`);
        throw error;
      }
    })) as Test<T>;
  return Object.assign(withHints, s);
}
