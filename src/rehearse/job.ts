/**
 * The job as a Torque batch user gets it: the environment pbs_mom gives a job
 * (PBS_JOBID, PBS_NODEFILE, PBS_O_WORKDIR, PBS_NP…), its stdout and stderr as
 * `<name>.o<seq>` and `<name>.e<seq>` in the submission folder (the owner's
 * NFS home), its exit status, its wall time. Pure: the command line the
 * rehearsal runs over SSH as the owner, and the verdict on what came back.
 */
import { posix } from 'node:path';
import { shellQuote } from '../exec/run.ts';
import { testBounded } from '../util/bounded-regex.ts';

export interface TorqueJob {
  /** `<seq>.<server>`, as qstat shows it. */
  id: string;
  seq: number;
  name: string;
  /** Where the job's streams land (Torque: the folder qsub ran in; here the owner's home). */
  stdoutName: string;
  stderrName: string;
  /** In the workspace: the job's exit status, written by the wrapper after the job (also proves the workspace takes writes). */
  statusName: string;
  env: Record<string, string>;
  /** Single node: the node file is written in the guest from its own hostname (the host does not know it). */
  nodeFileFromHostname?: number;
}

export interface JobPlan {
  name: string;
  clusterName: string;
  nonce: string;
  owner: string;
  home: string;
  workspace: string;
  /** Path of the node file in the guest (the owner's home). */
  nodeFile: string;
  nodes: number;
  slotsPerNode: number;
  /** The node file is already on the export (several nodes, written by the host). */
  nodeFileWritten: boolean;
}

/** Pure: the job's id, file names and environment. */
export function torqueJob(p: JobPlan): TorqueJob {
  // A job number as a server hands them out (five digits), from the rehearsal's nonce.
  const seq = 10_000 + (Number.parseInt(p.nonce.slice(0, 6), 16) % 90_000);
  const id = `${seq}.${p.clusterName}`;
  return {
    id, seq, name: p.name,
    stdoutName: `${p.name}.o${seq}`,
    stderrName: `${p.name}.e${seq}`,
    statusName: `job-${p.nonce}.done`,
    env: {
      PBS_JOBID: id,
      PBS_JOBNAME: p.name,
      PBS_NODEFILE: p.nodeFile,
      PBS_O_WORKDIR: p.home,
      PBS_O_HOME: p.home,
      PBS_O_LOGNAME: p.owner,
      PBS_QUEUE: 'batch',
      PBS_O_QUEUE: 'batch',
      PBS_O_SHELL: '/bin/bash',
      PBS_O_PATH: '/usr/local/bin:/usr/bin:/bin',
      PBS_ENVIRONMENT: 'PBS_BATCH',
      PBS_NP: String(p.nodes * p.slotsPerNode),
      PBS_NUM_NODES: String(p.nodes),
      PBS_NUM_PPN: String(p.slotsPerNode),
      PBS_NODENUM: '0',
      PBS_VNODENUM: '0',
      PBS_TASKNUM: '1',
      WORKSPACE: p.workspace,
    },
    ...(p.nodeFileWritten ? {} : { nodeFileFromHostname: p.slotsPerNode }),
  };
}

/**
 * Pure: the line run over SSH as the owner on the first node. Like pbs_mom it
 * starts in the home folder with the job's environment, runs the command in a
 * login shell with stdin from /dev/null and the streams into the .o and .e
 * files, ends it after `limitS` seconds (`timeout`: status 124, as Torque's
 * walltime limit ends a job), then writes the exit status to the workspace.
 * A node file that cannot be written is said on the .e file. Every value is quoted.
 */
export function jobCommandLine(job: TorqueJob, command: string, limitS: number): string {
  const q = (s: string) => shellQuote([s]);
  const nodeFile = q(job.env.PBS_NODEFILE!);
  const writeNodeFile = job.nodeFileFromHostname
    ? `{ i=0; while [ $i -lt ${job.nodeFileFromHostname} ]; do hostname; i=$((i+1)); done > ${nodeFile} || { echo "guestforge: cannot write the node file "${nodeFile} >&2; exit 97; }; } && `
    : '';
  const env = envAssignments(job.env);
  const status = posix.join(job.env.WORKSPACE!, job.statusName);
  return `cd && ( ${writeNodeFile}env ${env} timeout -k 10 ${limitS} bash -l -c ${q(command)} < /dev/null ) > ${q(job.stdoutName)} 2> ${q(job.stderrName)}; rc=$?; echo $rc > ${q(status)}; exit $rc`;
}

/** Pure: `K='v' K2='v2'`, each value quoted: the job's environment on a shell line. */
export function envAssignments(env: Record<string, string>): string {
  return Object.entries(env).map(([k, v]) => `${k}=${shellQuote([v])}`).join(' ');
}

/** Pure: the exit status the wrapper wrote ("3\n"), or undefined when it wrote none or something else. */
export function parseStatus(text: string | undefined): number | undefined {
  const m = /^(\d{1,3})\n?$/.exec(text ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * Pure: the last `n` non-empty lines of a stream, or '' for none. The guest
 * wrote them and they reach the terminal: control characters (escape
 * sequences that set titles, the clipboard or links) are dropped.
 */
export function tail(text: string | undefined, n: number): string {
  // eslint-disable-next-line no-control-regex
  return (text ?? '').replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '').split('\n').map((l) => l.trimEnd()).filter(Boolean).slice(-n).join('\n');
}

export interface JobOutcome {
  /** The wrapper's status, or undefined when the job never finished (SSH failed, the time ran out). */
  exitCode?: number;
  stdout?: string;
  stderr?: string;
  wallMs: number;
  expect?: string;
  /** Why no status came back, when none did. */
  transport?: string;
  /** The time limit as the cluster file says it (timeouts.job), for a job `timeout` ended (124). */
  limit?: string;
}

/** Pure: pass or fail, and the words for it: the status, the wall time, the tail of each stream. */
export function judgeJob(o: JobOutcome): { ok: boolean; detail: string } {
  const wall = `${(o.wallMs / 1000).toFixed(1)} s`;
  const streams = [
    tail(o.stderr, 5) ? `stderr (last lines):\n${tail(o.stderr, 5)}` : 'stderr: empty',
    tail(o.stdout, 5) ? `stdout (last lines):\n${tail(o.stdout, 5)}` : 'stdout: empty',
  ].join('\n');
  if (o.exitCode === undefined) return { ok: false, detail: `the job did not finish: ${o.transport ?? 'no exit status came back'} (after ${wall})\n${streams}` };
  if (o.exitCode === 124 && o.limit) return { ok: false, detail: `ended at its time limit, ${o.limit} (timeouts.job; exit 124) after ${wall}\n${streams}` };
  if (o.exitCode !== 0) return { ok: false, detail: `exit ${o.exitCode} after ${wall}\n${streams}` };
  if (o.expect !== undefined) {
    const matched = testBounded(o.expect, o.stdout ?? '');
    if (matched === 'timeout') return { ok: false, detail: `job.expect /${o.expect}/ did not finish in 1 s on the job's output: it backtracks without end (nested quantifiers such as (a+)+); write it without them` };
    if (!matched) return { ok: false, detail: `exit 0 after ${wall}, but its stdout does not match /${o.expect}/\n${streams}` };
  }
  return { ok: true, detail: `exit 0 after ${wall}${o.expect !== undefined ? `, stdout matches /${o.expect}/` : ''}\n${tail(o.stdout, 5) ? `stdout (last lines):\n${tail(o.stdout, 5)}` : 'stdout: empty'}` };
}
