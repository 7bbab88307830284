/**
 * `build --on-error ask`: the question on the terminal after a stage failed.
 * Ctrl-C, end of input or an interruption answer "clean up".
 */
import { createInterface } from 'node:readline';
import type { FailureChoice } from '../model/build.ts';

export function parseChoice(answer: string): FailureChoice | undefined {
  const word = answer.trim().toLowerCase();
  if (word === 'c' || word === 'cleanup') return 'cleanup';
  if (word === 'k' || word === 'keep') return 'keep';
  if (word === 'r' || word === 'retry') return 'retry';
  return undefined;
}

export function askOnTerminal(what: string, signal: AbortSignal): Promise<FailureChoice> {
  return new Promise((resolvePromise) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    let done = false;
    const finish = (choice: FailureChoice) => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      rl.close();
      resolvePromise(choice);
    };
    const onAbort = () => finish('cleanup');
    signal.addEventListener('abort', onAbort);
    // Ctrl-C reaches readline as a key on a raw terminal: an interruption like any other (clean up, exit 130).
    rl.on('SIGINT', () => {
      process.stderr.write('\n');
      finish('cleanup');
      process.kill(process.pid, 'SIGINT');
    });
    rl.on('close', () => finish('cleanup'));
    process.stderr.write(what);
    const ask = () => rl.question('[c]leanup, [k]eep, [r]etry stage? ', (answer) => {
      const choice = parseChoice(answer);
      if (choice) finish(choice);
      else ask();
    });
    ask();
  });
}
