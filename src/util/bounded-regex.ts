/**
 * A regular expression from a file we did not write, run on output we did not
 * write (a job's, a guest's), with a time bound: V8 can interrupt a regex that
 * backtracks without end ((a+)+$ on "aaaa…!") only through a vm timeout.
 */
import vm from 'node:vm';

/** How much of the text is searched: its end, where a job's verdict usually is. */
const maxText = 1024 * 1024;

/** Pure: why `pattern` is not a JavaScript regular expression, or undefined. */
export function regexProblem(pattern: string): string | undefined {
  try {
    new RegExp(pattern);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** true or false; 'timeout' when the pattern did not finish in `ms` (it backtracks catastrophically). */
export function testBounded(pattern: string, text: string, ms = 1000): boolean | 'timeout' {
  try {
    return vm.runInNewContext('new RegExp(p).test(s)', { p: pattern, s: text.slice(-maxText) }, { timeout: ms }) as boolean;
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return 'timeout';
    throw error;
  }
}
