/**
 * Progress and messages. On a TTY each long step gets an ora spinner with its
 * elapsed time; elsewhere (CI, pipes) plain timestamped lines. Everything is
 * also appended to a log file once a build has a log folder.
 */
import { appendFileSync } from 'node:fs';
import ora, { type Ora } from 'ora';

/**
 * Machine-readable progress (`build --json-events`): one JSON object per line
 * on stdout. The matrix reads its children through this, never their log text.
 */
export type BuildEvent =
  | { type: 'step'; state: 'running' | 'done' | 'failed'; title: string; seconds?: number; detail?: string }
  | { type: 'output'; path: string; bytes: number; sha256: string }
  | { type: 'result'; ok: boolean; error?: string; hint?: string; exitCode?: number };

/** Parses one line of a --json-events stream; anything else (a stray print) is undefined. */
export function parseEvent(line: string): BuildEvent | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const e = JSON.parse(line) as Partial<BuildEvent>;
    return e.type === 'step' || e.type === 'output' || e.type === 'result' ? (e as BuildEvent) : undefined;
  } catch {
    return undefined;
  }
}

export interface Step {
  /** A detail shown next to the step's title while it runs. */
  update(detail: string): void;
  succeed(detail?: string): void;
  fail(detail?: string): void;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

export class Logger {
  private file: string | undefined;
  readonly verbose: boolean;
  private readonly tty: boolean;
  private active: Ora | undefined;
  private readonly events: ((event: BuildEvent) => void) | undefined;

  constructor(options: { verbose?: boolean; tty?: boolean; events?: (event: BuildEvent) => void } = {}) {
    this.verbose = options.verbose ?? false;
    this.tty = options.tty ?? (Boolean(process.stderr.isTTY) && !process.env.CI);
    this.events = options.events;
  }

  /** Sends an event when a --json-events reader listens; otherwise nothing. */
  emit(event: BuildEvent): void {
    this.events?.(event);
  }

  /** Append everything from now on to this file too. */
  toFile(path: string): void {
    this.file = path;
  }

  private record(line: string): void {
    if (this.file) appendFileSync(this.file, `${new Date().toISOString()} ${line}\n`, { mode: 0o600 });
  }

  private print(line: string): void {
    if (this.active) {
      this.active.clear();
      process.stderr.write(`${line}\n`);
      this.active.render();
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  info(message: string): void {
    this.record(message);
    this.print(message);
  }

  warn(message: string): void {
    this.record(`warning: ${message}`);
    this.print(`warning: ${message}`);
  }

  /** Only with --verbose on the terminal, always in the log file. */
  detail(message: string): void {
    this.record(message);
    if (this.verbose) this.print(`  ${message}`);
  }

  step(title: string): Step {
    const started = Date.now();
    this.record(`▶ ${title}`);
    this.emit({ type: 'step', state: 'running', title });
    const ended = (state: 'done' | 'failed', d: string | undefined) =>
      this.emit({ type: 'step', state, title, seconds: Math.round((Date.now() - started) / 100) / 10, ...(d ? { detail: d } : {}) });
    let detail = '';
    const text = () => `${title} ${seconds(Date.now() - started)}${detail ? ` · ${detail}` : ''}`;
    if (!this.tty) {
      process.stderr.write(`▶ ${title}\n`);
      return {
        update: (d) => {
          detail = d;
          this.record(`  ${title}: ${d}`);
        },
        succeed: (d) => {
          const line = `✔ ${title} (${seconds(Date.now() - started)})${d ? ` ${d}` : ''}`;
          ended('done', d);
          this.record(line);
          process.stderr.write(`${line}\n`);
        },
        fail: (d) => {
          const line = `✖ ${title} (${seconds(Date.now() - started)})${d ? ` ${d}` : ''}`;
          ended('failed', d);
          this.record(line);
          process.stderr.write(`${line}\n`);
        },
      };
    }
    const spinner = ora({ text: text(), stream: process.stderr }).start();
    this.active = spinner;
    const timer = setInterval(() => (spinner.text = text()), 500);
    const end = (how: 'succeed' | 'fail', d?: string) => {
      clearInterval(timer);
      ended(how === 'succeed' ? 'done' : 'failed', d);
      detail = d ?? '';
      const line = `${title} (${seconds(Date.now() - started)})${detail ? ` ${detail}` : ''}`;
      this.record(`${how === 'succeed' ? '✔' : '✖'} ${line}`);
      spinner[how](line);
      this.active = undefined;
    };
    return {
      update: (d) => {
        detail = d;
        spinner.text = text();
      },
      succeed: (d) => end('succeed', d),
      fail: (d) => end('fail', d),
    };
  }
}
