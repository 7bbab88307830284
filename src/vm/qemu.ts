/**
 * qemu-system-x86_64 as our child process, started from a VmSpec (qemu-args.ts), stopped through
 * QMP or signals; and a VM left running for an admin, stopped by its pid. watch.ts watches its boot.
 */
import { readFile, rm } from 'node:fs/promises';
import { release, start } from '../exec/run.ts';
import { pidAlive } from '../exec/lock.ts';
import { qemuArgs } from './qemu-args.ts';
import { qmpCommand } from './qmp.ts';
import { freshConsoleLog } from './serial.ts';
import type { VmStarter } from './runner.ts';

/** qemu-system-x86_64 as a child process, stopped through QMP or signals. */
export const startQemu: VmStarter = async (spec) => {
  const argv = qemuArgs(spec);
  await freshConsoleLog(spec.serialLog);
  await rm(spec.qmpSocket, { force: true });
  if (spec.consoleSocket) await rm(spec.consoleSocket, { force: true });
  // A VM that may be kept runs in its own process group with no pipe to us, so it can outlive guestforge.
  const stderrFile = spec.consoleSocket ? `${spec.serialLog}.qemu-stderr` : undefined;
  if (stderrFile) await rm(stderrFile, { force: true }); // a retry's qemu must not be blamed for the last one's words
  const child = start(argv, stderrFile ? { detached: true, stderrFile } : {});
  let exited = false;
  let result: { exitCode?: number; stderr?: unknown } | undefined;
  const exit = child.then((r) => {
    exited = true;
    result = r;
    return r;
  });
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    await exit;
  };
  return {
    argv,
    wait: async (ms) => {
      await Promise.race([exit, new Promise((r) => setTimeout(r, ms))]);
    },
    stopped: async () => exited,
    powerdown: async () => {
      await qmpCommand(spec.qmpSocket, 'system_powerdown').catch(() => undefined);
    },
    stop: async () => {
      if (exited) return;
      await qmpCommand(spec.qmpSocket, 'quit').catch(() => undefined);
      await Promise.race([exit, new Promise((r) => setTimeout(r, 5000))]);
      await stop();
    },
    ...(spec.consoleSocket ? {
      release: () => {
        release(child);
        return child.pid ?? 0;
      },
    } : {}),
    failure: async () => {
      await exit;
      const stderr = stderrFile ? (await readFile(stderrFile, 'utf8').catch(() => '')).trim() : typeof result?.stderr === 'string' ? result.stderr.trim() : '';
      return result?.exitCode !== 0 && stderr ? `qemu failed (exit ${result?.exitCode}): ${stderr.split('\n').slice(-3).join(' | ')}` : undefined;
    },
  };
};

/** End a VM by its pid (it may not be our child): QMP quit, then SIGTERM, then SIGKILL. */
export async function stopKeptVm(pid: number, qmpSocket: string): Promise<void> {
  const gone = () => !pidAlive(pid);
  if (gone()) return;
  const asked = await qmpCommand(qmpSocket, 'quit').then(() => true, () => false);
  for (const [signal, waitMs] of [[undefined, asked ? 5000 : 0], ['SIGTERM', 5000], ['SIGKILL', 2000]] as const) {
    if (signal) {
      try {
        process.kill(pid, signal);
      } catch {
        return;
      }
    }
    for (let t = 0; t < waitMs && !gone(); t += 100) await new Promise((r) => setTimeout(r, 100));
    if (gone()) return;
  }
}

