/** Human and CI renderings of a verify report. */
import type { JunitCase } from '../report/junit.ts';
import type { VerifyReport } from '../model/verify.ts';

const marks = { pass: 'PASS', fail: 'FAIL', warn: 'WARN', skip: 'skip' } as const;

export function formatReport(report: VerifyReport): string[] {
  const width = Math.max(...report.results.map((r) => r.id.length));
  const lines = report.results.map((r) => `${marks[r.verdict]}  ${r.id.padEnd(width)}  ${r.evidence}`);
  const counts = (v: string) => report.results.filter((r) => r.verdict === v).length;
  lines.push(`${counts('pass')} passed, ${counts('fail')} failed, ${counts('warn')} warnings, ${counts('skip')} skipped${report.os ? ` · ${report.os.pretty}` : ''}`);
  return lines;
}

export function failedRules(report: VerifyReport): string[] {
  return report.results.filter((r) => r.verdict === 'fail').map((r) => `${r.id}: ${r.evidence}`);
}

export function junitCases(report: VerifyReport): JunitCase[] {
  return report.results.map((r) => ({
    name: r.id,
    className: 'guestforge.verify',
    status: r.verdict === 'fail' ? 'fail' : r.verdict === 'skip' ? 'skip' : 'pass',
    message: `${r.title}: ${r.evidence}`,
  }));
}
