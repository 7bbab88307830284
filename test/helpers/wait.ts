/**
 * Waiting in tests follows the runner's rule for virsh: a slow host is given
 * time while what we wait for still runs, and a dead one fails at once. So a
 * wait has no short count of tries, only `alive` and a generous ceiling.
 */
export async function waitUntil(ready: () => boolean | Promise<boolean>, options: { alive: () => boolean | Promise<boolean>; ceilingMs: number; everyMs?: number }): Promise<boolean> {
  const until = Date.now() + options.ceilingMs;
  for (;;) {
    if (await ready()) return true;
    if (!(await options.alive()) || Date.now() > until) return ready();
    await new Promise((r) => setTimeout(r, options.everyMs ?? 200));
  }
}

/** An execa child (or any ChildProcess) that has not exited. */
export function running(child: { exitCode: number | null; signalCode?: NodeJS.Signals | null }): boolean {
  return child.exitCode === null && !child.signalCode;
}
