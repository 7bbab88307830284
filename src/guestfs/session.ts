/**
 * One libguestfs appliance, driven command by command: `guestfish --listen`
 * starts it once (~20 s under TCG), then each `guestfish --remote` call is a
 * cheap round trip. This keeps each stage to one launch while letting the
 * code read answers and decide. Note: a failing remote command ends the
 * session, so callers test with exists/is-dir/is-file before they read.
 */
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { run } from '../exec/run.ts';
import { nonce } from '../util/fs.ts';
import { guestfsEnv, type Accel } from '../vm/accel.ts';

export interface GuestDisk {
  path: string;
  format: 'qcow2' | 'raw';
  readonly?: boolean;
  /** Let fstrim in the guest punch holes in the image. */
  discard?: boolean;
}

const open = new Set<number>();

/** Kill every appliance still running (signal handler, failed stage). */
export function killAllSessions(): void {
  for (const pid of open) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  open.clear();
}

export class GuestSession {
  private closed = false;

  private constructor(
    readonly pid: number,
    private readonly env: Record<string, string>,
  ) {}

  static async open(
    disks: GuestDisk[],
    options: { accel: Accel; smp?: number; memoryMiB?: number; network?: boolean; logFile?: string },
  ): Promise<GuestSession> {
    const env = guestfsEnv(options.accel);
    const argv = ['guestfish', '--listen'];
    if (options.network) argv.push('--network');
    // The listener daemonizes holding its stdout and stderr: give it files,
    // not our pipes, or we would wait for the daemon to exit.
    const pidFile = join(tmpdir(), `guestforge-guestfish-${process.pid}-${nonce(4)}.out`);
    let said = '';
    try {
      await run(argv, { env, timeoutMs: 60_000, stdoutFile: pidFile, stderrFile: options.logFile ?? '/dev/null' });
      said = await readFile(pidFile, 'utf8');
    } finally {
      await rm(pidFile, { force: true });
    }
    const pid = Number(/GUESTFISH_PID=(\d+)/.exec(said)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0) throw new UserError(`guestfish --listen gave no PID: ${said.trim()}`);
    open.add(pid);
    const session = new GuestSession(pid, env);
    try {
      for (const d of disks) {
        const flags = [`format:${d.format}`, ...(d.readonly ? ['readonly:true'] : []), ...(d.discard ? ['discard:besteffort'] : [])];
        await session.call('add-drive', d.path, ...flags);
      }
      if (options.smp) await session.call('set-smp', String(options.smp));
      if (options.memoryMiB) await session.call('set-memsize', String(options.memoryMiB));
      await session.call('run');
    } catch (error) {
      await session.close();
      throw error;
    }
    return session;
  }

  /** Run one guestfish command; returns its stdout. */
  async call(...args: string[]): Promise<string> {
    if (this.closed) throw new Error('guestfish session already closed');
    const result = await run(['guestfish', `--remote=${this.pid}`, '--', ...args], { env: this.env, timeoutMs: 30 * 60_000 });
    return result.stdout;
  }

  async lines(...args: string[]): Promise<string[]> {
    return (await this.call(...args)).split('\n').filter((l) => l !== '');
  }

  async bool(...args: string[]): Promise<boolean> {
    return (await this.call(...args)).trim() === 'true';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await run(['guestfish', `--remote=${this.pid}`, '--', 'exit'], { env: this.env, allowFailure: true, timeoutMs: 60_000 }).catch(() => undefined);
    // The listener exits once the appliance is shut down; make sure of it.
    for (let i = 0; i < 100 && isAlive(this.pid); i += 1) await new Promise((r) => setTimeout(r, 100));
    if (isAlive(this.pid)) process.kill(this.pid, 'SIGKILL');
    open.delete(this.pid);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
