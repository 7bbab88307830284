/** JUnit XML for CI: one test case per check or rule. */
import { writeFileAtomic } from '../util/fs.ts';

export interface JunitCase {
  name: string;
  className: string;
  status: 'pass' | 'fail' | 'skip';
  message?: string;
  seconds?: number;
}

function xml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c)
    // XML 1.0 forbids most control characters, which serial consoles are full of.
    // eslint-disable-next-line no-control-regex
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, '');
}

export function renderJunit(suite: string, cases: JunitCase[]): string {
  const failures = cases.filter((c) => c.status === 'fail').length;
  const skipped = cases.filter((c) => c.status === 'skip').length;
  const body = cases.map((c) => {
    const open = `    <testcase classname="${xml(c.className)}" name="${xml(c.name)}" time="${(c.seconds ?? 0).toFixed(3)}"`;
    if (c.status === 'pass') return `${open}/>`;
    const inner = c.status === 'fail'
      ? `<failure message="${xml(c.message ?? 'failed')}">${xml(c.message ?? '')}</failure>`
      : `<skipped message="${xml(c.message ?? '')}"/>`;
    return `${open}>\n      ${inner}\n    </testcase>`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites tests="${cases.length}" failures="${failures}" skipped="${skipped}">`,
    `  <testsuite name="${xml(suite)}" tests="${cases.length}" failures="${failures}" skipped="${skipped}">`,
    ...body,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

export async function writeJunit(path: string, suite: string, cases: JunitCase[]): Promise<void> {
  await writeFileAtomic(path, renderJunit(suite, cases));
}
