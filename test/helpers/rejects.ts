/**
 * The error `work` fails with, checked against `match`. Unlike
 * `try { …; assert.unreachable() } catch (e) { assert.match(…) }`, a call that
 * does not fail is reported as such, not as a message that does not match.
 */
import * as assert from 'uvu/assert';

export async function rejects(work: Promise<unknown> | (() => unknown), match: RegExp, what = 'the call should have failed'): Promise<Error & { hint?: string }> {
  let failed: unknown;
  let threw = false;
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (error) {
    threw = true;
    failed = error;
  }
  if (!threw) assert.unreachable(what);
  assert.instance(failed, Error);
  assert.match((failed as Error).message, match);
  return failed as Error & { hint?: string };
}
