/**
 * Several profiles at once (`build a.yaml b.yaml --jobs N [--connect
 * URI1,URI2]`): each build is a guestforge child process of its own (its own
 * signals, logs and exit code), spread over the given libvirt hosts, at most
 * N at a time. One status line per build while they run; a summary table at
 * the end. A failing build does not stop the others; the exit code is 1 if
 * any failed. Children report through `--json-events` (JSON lines on their
 * stdout), never through their log text.
 */
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import { InterruptedError } from '../errors.ts';
import { start } from '../exec/run.ts';
import { parseEvent, type BuildEvent } from '../log.ts';
import { textTable } from '../report/table.ts';
import { projectRoot } from '../util/project.ts';

export interface MatrixJob {
  file: string;
  name: string;
}

export interface MatrixOptions {
  jobs: number;
  /** libvirt URIs to spread builds over; [undefined] = wherever each profile says. */
  hosts: (string | undefined)[];
  /** Passed to every child build (-o, --no-smoke, --accel, …). */
  args: string[];
  signal: AbortSignal;
}

export interface MatrixResult {
  job: MatrixJob;
  host?: string;
  ok: boolean;
  ms: number;
  detail: string;
}

interface Running {
  job: MatrixJob;
  host: string | undefined;
  status: string;
  started: number;
  /** From the child's events: its output files, and its last word. */
  outputs: string[];
  result?: Extract<BuildEvent, { type: 'result' }>;
}

const cli = join(projectRoot, 'bin', 'guestforge.js');

/** A child's step event as one status line: "[2/6] build VM (cloud-init) done: result after 107s". */
export function statusOf(event: BuildEvent): string | undefined {
  if (event.type !== 'step') return undefined;
  const state = event.state === 'running' ? 'running' : event.state;
  return `${event.title} ${state}${event.detail ? `: ${event.detail}` : ''}`;
}

export async function runMatrix(jobs: MatrixJob[], options: MatrixOptions): Promise<MatrixResult[]> {
  const tty = Boolean(process.stderr.isTTY) && !process.env.CI;
  const queue = [...jobs];
  const running = new Map<ResultPromise, Running>();
  const load = new Map<string | undefined, number>(options.hosts.map((h) => [h, 0]));
  const results: MatrixResult[] = [];
  let drawn = 0;

  const draw = () => {
    if (!tty) return;
    if (drawn > 0) process.stderr.write(`\x1b[${drawn}A\x1b[J`);
    const lines = [...running.values()].map((r) => `  ${r.job.name.padEnd(20)} ${((Date.now() - r.started) / 1000).toFixed(0).padStart(5)}s  ${r.host ?? ''}  ${r.status}`.slice(0, (process.stderr.columns || 120) - 1));
    process.stderr.write(lines.map((l) => `${l}\n`).join(''));
    drawn = lines.length;
  };
  const say = (line: string) => {
    if (tty && drawn > 0) {
      process.stderr.write(`\x1b[${drawn}A\x1b[J`);
      drawn = 0;
    }
    process.stderr.write(`${line}\n`);
    draw();
  };
  const timer = tty ? setInterval(draw, 1000) : undefined;

  const leastLoaded = () => [...load.entries()].sort((a, b) => a[1] - b[1])[0]![0];

  const launch = (job: MatrixJob) => {
    const host = leastLoaded();
    load.set(host, (load.get(host) ?? 0) + 1);
    const args = ['build', job.file, '--json-events', ...options.args, ...(host ? ['--backend', 'libvirt', '--connect', host] : [])];
    const entry: Running = { job, host, status: 'starting', started: Date.now(), outputs: [] };
    // Through the exec module: a signal to us reaches every child build (killAll).
    const child = start([process.execPath, cli, ...args], {
      env: { CI: '1' },
      onLine: (line, stream) => {
        const event = stream === 'stdout' ? parseEvent(line) : undefined;
        if (!event) return;
        if (event.type === 'output') entry.outputs.push(event.path);
        if (event.type === 'result') entry.result = event;
        const status = statusOf(event);
        if (!status) return;
        entry.status = status;
        if (!tty) say(`${job.name}: ${status}`);
      },
    });
    running.set(child, entry);
    say(`${job.name}: started${host ? ` on ${host}` : ''}`);
    return child;
  };

  // withSignals kills the running children; nothing more may start.
  const onAbort = () => {
    queue.length = 0;
  };
  options.signal.addEventListener('abort', onAbort);
  try {
    while (queue.length > 0 || running.size > 0) {
      while (queue.length > 0 && running.size < options.jobs) launch(queue.shift()!);
      const [child, r] = await Promise.race([...running.keys()].map((c) => c.then((res) => [c, res] as const)));
      const entry = running.get(child)!;
      running.delete(child);
      load.set(entry.host, (load.get(entry.host) ?? 1) - 1);
      const error = entry.result?.ok === false ? entry.result.error : undefined;
      const outputs = entry.outputs;
      const ok = r.exitCode === 0 && entry.result?.ok === true;
      const result: MatrixResult = {
        job: entry.job,
        ...(entry.host ? { host: entry.host } : {}),
        ok,
        ms: Date.now() - entry.started,
        detail: ok ? outputs.join(', ') : (error ?? `exit ${r.exitCode}${r.signal ? ` (${r.signal})` : ''}`),
      };
      results.push(result);
      say(`${entry.job.name}: ${ok ? 'succeeded' : `FAILED: ${result.detail}`}`);
    }
  } finally {
    options.signal.removeEventListener('abort', onAbort);
    if (timer) clearInterval(timer);
    draw();
  }
  if (options.signal.aborted) throw options.signal.reason instanceof InterruptedError ? options.signal.reason : new InterruptedError('SIGINT');
  return jobs.map((j) => results.find((r) => r.job === j)!);
}

export function summaryTable(results: MatrixResult[]): string[] {
  return textTable(
    ['PROFILE', 'HOST', 'RESULT', 'TIME', 'OUTPUT / ERROR'],
    results.map((r) => [r.job.name, r.host ?? 'local', r.ok ? 'ok' : 'FAILED', `${(r.ms / 1000).toFixed(0)}s`, r.detail]),
  );
}
