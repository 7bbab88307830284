/** How a rehearsal is shown: lines for people, JUnit cases for CI. */
import type { JunitCase } from '../report/junit.ts';
import type { RehearsalReport } from './types.ts';

const s = (ms?: number) => (ms === undefined ? '—' : `${(ms / 1000).toFixed(1)} s`);

/** The cluster's own costs inside cloud-init done, each with its share of it; undefined when the guest timed none. */
export function clusterCostLine(report: Pick<RehearsalReport, 'clusterCost' | 'cloudInitDoneMs'>): string | undefined {
  const cost = report.clusterCost;
  if (!cost) return undefined;
  const share = (ms?: number) => (ms === undefined ? '—' : `${s(ms)}${report.cloudInitDoneMs ? ` (${Math.round((100 * ms) / report.cloudInitDoneMs)}%)` : ''}`);
  return `of cloud-init done, the cluster's user-data: boot-time packages ${share(cost.packagesMs)}, runcmd before the checks (host keys, sshd restart) ${share(cost.runcmdMs)}`;
}

export function formatRehearsal(report: RehearsalReport): string[] {
  const lines = report.checks.map((c) => `${c.status.toUpperCase().padEnd(4)}  ${c.id}  ${c.detail.split('\n').join('\n      ')}`);
  lines.push(`job-ready ${s(report.jobReadyMs)} · cloud-init done ${s(report.cloudInitDoneMs)}${report.nodes ? ' (the slowest VM, from its start)' : ' (from VM start)'} · job ${s(report.jobMs)} · VM start to the job's end ${s(report.jobEndMs)}`);
  const cost = clusterCostLine(report);
  if (cost) lines.push(cost);
  const job = report.job;
  if (job) {
    lines.push(`job ${job.id} on ${job.node}: ${job.exitCode === undefined ? 'no exit status' : `exit ${job.exitCode}`}, wall ${s(job.wallMs)}; stdout ${job.stdout}, stderr ${job.stderr}`);
  }
  for (const n of report.nodes ?? []) lines.push(`  ${n.name} ${n.address}: job-ready ${s(n.jobReadyMs)} · cloud-init done ${s(n.cloudInitDoneMs)} · console ${n.serialLog}`);
  if (report.mpiMs !== undefined) lines.push(`MPI job across ${report.nodes?.length ?? 1} VMs: ${s(report.mpiMs)}${report.rdmaBetweenVms ? ` · ib_send_bw between VMs: ${report.rdmaBetweenVms}` : ''}`);
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
