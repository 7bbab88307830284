/** How a rehearsal is shown: lines for people, JUnit cases for CI. */
import type { JunitCase } from '../report/junit.ts';
import type { RehearsalReport } from './run.ts';

const s = (ms?: number) => (ms === undefined ? '—' : `${(ms / 1000).toFixed(1)} s`);

export function formatRehearsal(report: RehearsalReport): string[] {
  const lines = report.checks.map((c) => `${c.status.toUpperCase().padEnd(4)}  ${c.id}  ${c.detail.split('\n').join('\n      ')}`);
  lines.push(`job-ready ${s(report.jobReadyMs)} · cloud-init done ${s(report.cloudInitDoneMs)} · job ${s(report.jobMs)} (from VM start)`);
  lines.push(report.ok ? `rehearsal passed: ${report.checks.length} checks` : `rehearsal failed: ${report.checks.filter((c) => c.status === 'fail').map((c) => c.id).join(', ')}`);
  lines.push(`console log: ${report.serialLog}`);
  return lines;
}

export function rehearsalJunitCases(report: RehearsalReport): JunitCase[] {
  return report.checks.map((c) => ({
    name: c.id,
    className: 'guestforge.rehearse',
    status: c.status === 'fail' ? 'fail' : 'pass',
    message: c.detail,
    ...(c.seconds !== undefined ? { seconds: c.seconds } : {}),
  }));
}
