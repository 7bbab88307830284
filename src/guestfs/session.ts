/**
 * One libguestfs appliance, driven command by command: `guestfish --listen`
 * starts it once (~20 s under TCG), then each `guestfish --remote` call is a
 * cheap round trip. This keeps each stage to one launch while letting the
 * code read answers and decide. Note: a failing remote command ends the
 * session, so callers test with exists/is-dir/is-file before they read.
 */
import { pidAlive } from '../exec/lock.ts';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { CommandError, run } from '../exec/run.ts';
import { nonce, sizeOf, tailFrom } from '../util/fs.ts';
import { withoutControls } from '../util/text.ts';
import { redactUrlsIn } from '../util/url.ts';
import { fishScript, splitScriptOutput } from './script.ts';
import { guestfsEnv, type Accel } from '../vm/accel.ts';

export interface GuestDisk {
  path: string;
  format: 'qcow2' | 'raw' | 'vmdk';
  readonly?: boolean;
  /** Let fstrim in the guest punch holes in the image. */
  discard?: boolean;
}

/** Every listener still running, by PID: its private folder. */
const open = new Map<number, string>();

/** 20-25 s is normal under TCG here; a hung appliance kernel never answers. */
export const launchTimeoutMs = 180_000;

export interface OpenOptions {
  accel: Accel;
  smp?: number;
  memoryMiB?: number;
  network?: boolean;
  logFile?: string;
  launchTimeoutMs?: number;
  /** Told when a launch timed out (or named its disks wrongly) and is tried once more. */
  onRetry?: (reason: string) => void;
}

class LaunchTimeout extends UserError {}

/** Pure: the names libguestfs gives `count` added disks (/dev/sda …), or undefined past 26. */
export function expectedDeviceNames(count: number): string[] | undefined {
  if (count > 26) return undefined;
  return Array.from({ length: count }, (_, i) => `/dev/sd${String.fromCharCode(97 + i)}`);
}

/** Kill every appliance still running (signal handler, failed stage). */
export function killAllSessions(): void {
  for (const [pid, dir] of open) {
    for (const child of childrenOf(pid)) killQuietly(child, 'SIGTERM');
    killQuietly(pid, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  open.clear();
}

export class GuestSession {
  private closed = false;

  private constructor(
    readonly pid: number,
    private readonly env: Record<string, string>,
    /** Where the server writes: `guestfish --remote` prints a failed command's reason there, not on its own stderr. */
    private readonly serverLog: string,
    /** The session's own private folder (the server's log when no logFile was given), removed at close. */
    private readonly ownDir: string,
  ) {}

  /**
   * Launch an appliance. Under TCG an appliance kernel now and then hangs at
   * boot (seen here: minutes at full CPU, where 20-25 s is normal), so the
   * launch has a deadline and one retry; so has a launch whose disks are not
   * named in the order they were added.
   */
  static async open(disks: GuestDisk[], options: OpenOptions): Promise<GuestSession> {
    try {
      return await GuestSession.launch(disks, options);
    } catch (error) {
      if (!(error instanceof LaunchTimeout)) throw error;
      options.onRetry?.(error.message);
      return GuestSession.launch(disks, options);
    }
  }

  /** A guestfish listener with no disk and no appliance yet (nothing is launched until `run`). */
  static async listen(options: Pick<OpenOptions, 'accel' | 'network' | 'logFile'>): Promise<GuestSession> {
    const env = guestfsEnv(options.accel);
    const argv = ['guestfish', '--listen'];
    if (options.network) argv.push('--network');
    // The listener daemonizes holding its stdout and stderr: give it files, not our pipes, or we
    // would wait for the daemon to exit. Its stderr is kept (a private folder, mode 0700): that is
    // where a failed remote command's reason goes.
    const ownDir = await mkdtemp(join(tmpdir(), `guestforge-guestfish-${process.pid}-`));
    const pidFile = join(ownDir, 'listen.out');
    const serverLog = options.logFile ?? join(ownDir, 'server.log');
    let said = '';
    try {
      await run(argv, { env, timeoutMs: 60_000, stdoutFile: pidFile, stderrFile: serverLog });
      said = await readFile(pidFile, 'utf8');
    } catch (error) {
      // What the listener said before it failed is in its log: keep it in the error, then drop the folder.
      const failed = error instanceof CommandError ? error.withStderr(await tailFrom(serverLog, 0)) : error;
      await rm(ownDir, { recursive: true, force: true });
      throw failed;
    } finally {
      await rm(pidFile, { force: true });
    }
    const pid = Number(/GUESTFISH_PID=(\d+)/.exec(said)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0) {
      await rm(ownDir, { recursive: true, force: true });
      throw new UserError(`guestfish --listen gave no PID: ${said.trim()}`);
    }
    open.set(pid, ownDir);
    return new GuestSession(pid, env, serverLog, ownDir);
  }

  private static async launch(disks: GuestDisk[], options: OpenOptions): Promise<GuestSession> {
    const session = await GuestSession.listen(options);
    const pid = session.pid;
    try {
      for (const d of disks) {
        const flags = [`format:${d.format}`, ...(d.readonly ? ['readonly:true'] : []), ...(d.discard ? ['discard:besteffort'] : [])];
        await session.call('add-drive', d.path, ...flags);
      }
      if (options.smp) await session.call('set-smp', String(options.smp));
      if (options.memoryMiB) await session.call('set-memsize', String(options.memoryMiB));
      const deadline = options.launchTimeoutMs ?? launchTimeoutMs;
      try {
        await session.callWithin(deadline, 'run');
      } catch (error) {
        if (error instanceof CommandError && error.result.timedOut) {
          throw new LaunchTimeout(`the libguestfs appliance did not start within ${deadline / 1000}s`);
        }
        throw error;
      }
      // libguestfs names the disks /dev/sda, /dev/sdb, … in the order they were added, whatever the
      // appliance's kernel named them. Under heavy load here that mapping has come out wrong twice
      // (an inspected root on /dev/sdd with three disks added, then unknown to the next call): a
      // launch whose disks are not exactly those names is not trusted, and is made once more.
      const expected = expectedDeviceNames(disks.length);
      const devices = await session.lines('list-devices');
      if (expected && devices.join(' ') !== expected.join(' ')) {
        throw new LaunchTimeout(`the libguestfs appliance listed its disks as [${devices.join(', ')}], not [${expected.join(', ')}]`);
      }
    } catch (error) {
      await session.close();
      // The server forked by `guestfish --listen` was gone before its first command (seen once under
      // heavy load): like a hung launch, worth one more try.
      if (error instanceof CommandError && /server is not running/.test(error.result.stderr)) {
        throw new LaunchTimeout(`the guestfish server ${pid} ended before its first command`);
      }
      throw error;
    }
    return session;
  }

  /** Run one guestfish command; returns its stdout. */
  async call(...args: string[]): Promise<string> {
    return this.callWithin(30 * 60_000, ...args);
  }

  async callWithin(timeoutMs: number, ...args: string[]): Promise<string> {
    if (this.closed) throw new Error('guestfish session already closed');
    const from = sizeOf(this.serverLog);
    try {
      return (await run(['guestfish', `--remote=${this.pid}`, '--', ...args], { env: this.env, timeoutMs })).stdout;
    } catch (error) {
      throw error instanceof CommandError ? error.withStderr(await tailFrom(this.serverLog, from)) : error;
    }
  }

  /**
   * Many commands in one guestfish client (script.ts): each command's output,
   * '' where it failed. A failure ends neither the batch nor the session.
   */
  async batch(commands: readonly (readonly string[])[], timeoutMs = 10 * 60_000): Promise<string[]> {
    if (commands.length === 0) return [];
    if (this.closed) throw new Error('guestfish session already closed');
    const marker = `@@guestforge-${nonce(8)}-`;
    const from = sizeOf(this.serverLog);
    const result = await run(['guestfish', `--remote=${this.pid}`], { env: this.env, input: fishScript(commands, marker), timeoutMs });
    const outputs = splitScriptOutput(result.stdout, marker, commands.length);
    if (outputs.length < commands.length) {
      const said = withoutControls(`${result.stderr.trim()}\n${await tailFrom(this.serverLog, from)}`.trim());
      throw new UserError(`guestfish stopped answering after ${outputs.length} of ${commands.length} commands`, { hint: redactUrlsIn(said.split('\n').slice(-5).join('\n')) || undefined });
    }
    return outputs;
  }

  /**
   * A yes/no question that may fail without ending the session (guestfish's '-'
   * prefix): undefined then. is-file and the like fail on a path through a loop
   * of symbolic links, which a hostile image may hold anywhere.
   */
  async tryBool(...args: string[]): Promise<boolean | undefined> {
    const answer = (await this.tryCall(...args)).trim();
    return answer === 'true' ? true : answer === 'false' ? false : undefined;
  }

  /** One command that may fail without ending the session: its output, '' when it failed. */
  async tryCall(...args: string[]): Promise<string> {
    const [name, ...rest] = args;
    return this.call(`-${name}`, ...rest);
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
    for (let i = 0; i < 100 && pidAlive(this.pid); i += 1) await new Promise((r) => setTimeout(r, 100));
    if (pidAlive(this.pid)) {
      // A listener killed alone would orphan its qemu: end the children first.
      for (const child of childrenOf(this.pid)) killQuietly(child, 'SIGKILL');
      killQuietly(this.pid, 'SIGKILL');
    }
    open.delete(this.pid);
    await rm(this.ownDir, { recursive: true, force: true });
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
