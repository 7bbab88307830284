/**
 * The one door to external programs. It runs argv arrays (never a shell
 * string), keeps every child it started so a signal can end them all, and
 * turns failures into errors that show a pasteable command line, the exit code
 * and the end of stderr.
 */
import { accessSync, closeSync, constants, openSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { execa, type Options, type ResultPromise } from 'execa';
import { UserError } from '../errors.ts';
import { aptPackageFor } from '../host/tools.ts';
import { shellQuote } from '../util/quote.ts';
import { withoutControls } from '../util/text.ts';
import { redactUrlsIn } from '../util/url.ts';

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Kill the program (SIGTERM, then SIGKILL after 5 s) after this long. */
  timeoutMs?: number;
  input?: string | Buffer;
  /** Write stdout to this file instead of keeping it. */
  stdoutFile?: string;
  /**
   * Send stderr to this file instead of keeping it. Needed for programs that
   * daemonize (guestfish --listen): a daemon holding our pipe open would keep
   * us waiting for it.
   */
  stderrFile?: string;
  /** Called with each line of stdout/stderr as it arrives (progress, --verbose). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** A non-zero exit is returned, not thrown. */
  allowFailure?: boolean;
  cancelSignal?: AbortSignal;
  /** Open descriptors the child gets as fd 3, 4, … (flock(1) locks the one it is given). */
  passFds?: number[];
  /**
   * Its own process group, not ended when guestforge exits: a VM that
   * `--on-error keep` may leave running (release() lets it go). Needs
   * stderrFile: no pipe may tie it to us.
   */
  detached?: boolean;
}

export interface RunResult {
  argv: readonly string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const live = new Set<ResultPromise>();

export { shellQuote } from '../util/quote.ts';

function lastLines(text: string, count: number): string {
  const lines = text.trimEnd().split('\n');
  return lines.slice(-count).join('\n');
}

export class CommandError extends UserError {
  constructor(
    readonly result: RunResult,
    readonly envShown: Record<string, string | undefined> = {},
  ) {
    const name = result.argv[0] ?? '?';
    const how = result.timedOut ? 'timed out' : `exited with code ${result.exitCode}`;
    const envPrefix = Object.entries(envShown)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${shellQuote([v as string])} `)
      .join('');
    // A program's words may quote what a hostile image holds (paths, file contents): no control characters reach the terminal.
    const tail = withoutControls(lastLines(result.stderr || result.stdout, 20));
    super(`${name} ${how}`, {
      hint: redactUrlsIn(`command: ${envPrefix}${shellQuote(result.argv)}${tail ? `\n${tail.replace(/^/gm, '  | ')}` : ''}`),
    });
    this.name = 'CommandError';
  }

  /**
   * The same failure with more of what the program said, from where it said it (a daemon's
   * log: `guestfish --remote` prints a failed command's reason on its server's stderr).
   */
  withStderr(more: string): CommandError {
    const stderr = [this.result.stderr.trimEnd(), more.trimEnd()].filter(Boolean).join('\n');
    return new CommandError({ ...this.result, stderr }, this.envShown);
  }
}

export class ToolMissingError extends UserError {
  constructor(readonly program: string) {
    const apt = aptPackageFor(program);
    super(`${program} not found`, {
      hint: apt ? `install it: apt-get install ${apt} (or run: guestforge doctor)` : 'install it and make sure it is on PATH',
    });
    this.name = 'ToolMissingError';
  }
}

function isMissing(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: string }).code === 'ENOENT';
}

/** Start a program and return its handle; the caller awaits it. Tracked for killAll. */
export function start(argv: readonly string[], options: RunOptions = {}): ResultPromise {
  const [file, ...args] = argv;
  if (!file) throw new Error('start: empty argv');
  // Plain descriptors, not execa's {file}: that one pipes through us, and a
  // daemonizing child (guestfish --listen) would then hold our pipe open.
  const fds: number[] = [];
  const fdFor = (path: string | undefined, flags: string) => {
    if (!path) return undefined;
    const fd = openSync(path, flags, 0o600);
    fds.push(fd);
    return fd;
  };
  const stdoutFd = fdFor(options.stdoutFile, 'w');
  const stderrFd = fdFor(options.stderrFile, 'a');
  if (options.passFds?.length && options.input !== undefined) throw new Error('start: passFds cannot be combined with input');
  if (options.detached && !options.stderrFile) throw new Error('start: a detached child needs stderrFile');
  const streams = options.detached
    ? { stdin: 'ignore', stdout: stdoutFd ?? 'ignore', stderr: stderrFd }
    : options.passFds?.length
    ? { stdio: ['ignore', stdoutFd ?? 'pipe', stderrFd ?? 'pipe', ...options.passFds] }
    : { ...(options.input === undefined ? { stdin: 'ignore' } : {}), stdout: stdoutFd ?? 'pipe', stderr: stderrFd ?? 'pipe' };
  const execaOptions = {
    env: options.env,
    extendEnv: true,
    cwd: options.cwd,
    timeout: options.timeoutMs,
    forceKillAfterDelay: 5000,
    ...streams,
    ...(options.input === undefined ? {} : { input: options.input }),
    reject: false,
    encoding: 'utf8',
    stripFinalNewline: false,
    maxBuffer: 256 * 1024 * 1024,
    cancelSignal: options.cancelSignal,
    lines: false,
    ...(options.detached ? { detached: true, cleanup: false } : {}),
  } as Options;
  const child = execa(file, args, execaOptions) as ResultPromise;
  live.add(child);
  const forget = () => {
    live.delete(child);
    for (const fd of fds) closeSync(fd);
  };
  child.then(forget, forget);
  if (options.onLine) {
    const onLine = options.onLine;
    let partial: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
    const feed = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const text = partial[stream] + chunk.toString('utf8');
      const lines = text.split('\n');
      partial = { ...partial, [stream]: lines.pop() ?? '' };
      for (const line of lines) onLine(line.replace(/\r$/, ''), stream);
    };
    child.stdout?.on('data', feed('stdout'));
    child.stderr?.on('data', feed('stderr'));
  }
  return child;
}

/**
 * Stop tracking a detached child and let guestforge exit while it runs
 * (a build VM kept for debugging: `guestforge discard` ends it).
 */
export function release(child: ResultPromise): void {
  live.delete(child);
  child.unref();
}

/**
 * A program on the user's terminal (guestfish for `guestforge shell`):
 * stdin, stdout and stderr are ours; its exit code is returned.
 */
export async function runInteractive(argv: readonly string[], options: Pick<RunOptions, 'env'> = {}): Promise<number> {
  const [file, ...args] = argv;
  if (!file) throw new Error('runInteractive: empty argv');
  if (!findOnPath(file, options.env?.PATH ?? process.env.PATH)) throw new ToolMissingError(file);
  const child = execa(file, args, { env: options.env, extendEnv: true, stdio: 'inherit', reject: false });
  live.add(child as ResultPromise);
  const done = await child.finally(() => live.delete(child as ResultPromise));
  return done.exitCode ?? (done.signal ? 128 : 1);
}

/** Run a program to completion. Throws CommandError on failure unless allowFailure. */
export async function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  let child: ResultPromise;
  try {
    child = start(argv, options);
  } catch (error) {
    if (isMissing(error)) throw new ToolMissingError(argv[0] ?? '?');
    throw error;
  }
  const done = await child;
  if (done.failed && isMissing(done.cause)) throw new ToolMissingError(argv[0] ?? '?');
  const result: RunResult = {
    argv,
    exitCode: done.exitCode ?? (done.signal ? 128 : 1),
    stdout: typeof done.stdout === 'string' ? done.stdout : '',
    stderr: typeof done.stderr === 'string' ? done.stderr : '',
    timedOut: Boolean(done.timedOut),
  };
  // 127 is also what a shell's own lookup returns (`sh -c 'command -v x'`): the program is missing only when it is not on PATH.
  if (result.exitCode === 127 && !result.stderr.trim() && !findOnPath(argv[0] ?? '', options.env?.PATH ?? process.env.PATH)) throw new ToolMissingError(argv[0] ?? '?');
  if ((done.failed || result.exitCode !== 0) && !options.allowFailure) {
    throw new CommandError(result, pickShownEnv(options.env));
  }
  return result;
}

/** Only the variables that matter for reproducing a command are shown in errors. */
function pickShownEnv(env: RunOptions['env']): Record<string, string | undefined> {
  if (!env) return {};
  return Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('LIBGUESTFS_')));
}

/** Where `name` would be run from: an executable file on PATH (or the path itself when it has a slash), else undefined. */
export function findOnPath(name: string, path = process.env.PATH ?? ''): string | undefined {
  const candidates = name.includes('/') ? [name] : path.split(delimiter).filter(Boolean).map((dir) => join(dir, name));
  for (const file of candidates) {
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** Kill every child still running (signal handler, failed build). */
export async function killAll(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const children = [...live];
  for (const child of children) child.kill(signal);
  await Promise.allSettled(children);
}

