/**
 * SIGINT/SIGTERM during a long command: abort the work, kill every child
 * (qemu, guestfish appliances, mmdebstrap), let the stages clean up, then
 * exit 130/143. A second signal while cleaning up is ignored, but said.
 */
import { InterruptedError } from '../errors.ts';
import { killAll } from '../exec/run.ts';
import { killAllSessions } from '../guestfs/session.ts';

export async function withSignals<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (received) {
      process.stderr.write(`${signal} again: still cleaning up, please wait\n`);
      return;
    }
    received = signal;
    process.stderr.write(`\n${signal}: stopping; cleaning up\n`);
    controller.abort(new InterruptedError(signal));
    killAllSessions();
    void killAll('SIGTERM');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await work(controller.signal);
    if (received) throw new InterruptedError(received);
    return result;
  } catch (error) {
    if (received) throw new InterruptedError(received);
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
