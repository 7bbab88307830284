/** A terminal program driven through a pty (script(1), from util-linux): each answer is typed when its prompt shows. */
import { execa } from 'execa';

export interface PtyStep {
  /** Looked for in the output since the last answer. */
  expect: RegExp;
  send: string;
}

export async function onPty(argv: string[], steps: PtyStep[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ exitCode: number; output: string }> {
  const command = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const child = execa('script', ['-qefc', command, '/dev/null'], { env: options.env ?? {}, reject: false, timeout: options.timeoutMs ?? 5 * 60_000, stdin: 'pipe' });
  let output = '';
  let from = 0;
  let step = 0;
  child.stdout!.on('data', (d: Buffer) => {
    output += d.toString();
    while (step < steps.length && steps[step]!.expect.test(output.slice(from))) {
      from = output.length;
      child.stdin!.write(steps[step]!.send);
      step += 1;
    }
  });
  const r = await child;
  return { exitCode: r.exitCode ?? -1, output };
}
