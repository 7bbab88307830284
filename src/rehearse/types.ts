/** What a rehearsal is given, what it reports, and the state it keeps per VM and for the whole run. */
import type { Cluster } from '../cluster/schema.ts';
import type { Logger, Step } from '../log.ts';
import type { CheckLine } from '../model/smoke.ts';
import type { Layout } from '../policy/layout.ts';
import type { Accel } from '../vm/accel.ts';
import type { VmRunner } from '../vm/runner.ts';
import type { SerialTail } from '../vm/serial.ts';
import type { NodeSpec } from './nodes.ts';
import type { SshTarget } from './ssh.ts';

export interface RehearseOptions {
  cluster: Cluster;
  layout: Layout;
  accel: Accel;
  nonce: string;
  workDir: string;
  logDir: string;
  log: Logger;
  signal: AbortSignal;
  step?: Step;
  /** VMs in this rehearsal (default 1; from 2 on: private segment, MPI across them). */
  nodes?: number;
  /** Fail when the image cannot do RDMA between the VMs (multi-node). */
  requireVrdma?: boolean;
  /** The package mirrors' URLs the guests may reach (the host's apt sources, the profile's mirror). */
  mirrors?: string[];
}

export interface RehearsalCheck extends CheckLine {
  status: 'pass' | 'fail' | 'warn';
  seconds?: number;
}

export interface RehearsalReport {
  ok: boolean;
  checks: RehearsalCheck[];
  /** VM start → SSH as the owner works: what the batch system waits for per job. */
  jobReadyMs?: number;
  /** VM start → `cloud-init status --wait` returned. */
  cloudInitDoneMs?: number;
  /**
   * Two parts of cloud-init done that are the cluster's user-data, as the guest timed them (the
   * most any VM took, each on its own): its boot-time `packages` run (apt-get update, install), and its runcmd lines
   * before our checks (host keys, sshd's restart).
   */
  clusterCost?: { packagesMs?: number; runcmdMs?: number };
  /** The job's wall time (SSH start to its end). */
  jobMs?: number;
  /** The first VM's start → the job's end: what a one-job allocation costs from boot. */
  jobEndMs?: number;
  /** The job's stdout (its .o file). */
  jobOutput?: string;
  /** The job as its batch user sees it: id, exit status, wall time, where its streams were kept, their tails. */
  job?: {
    id: string; name: string; command: string; node: string; exitCode?: number; wallMs: number; endMs: number;
    /** The copies of its .o and .e files beside the logs (absent when the job left none). */
    stdout?: string; stderr?: string; stdoutTail: string; stderrTail: string; env: Record<string, string>;
  };
  serialLog: string;
  /** Multi-node: each VM's own figures (jobReadyMs above is the slowest one's: the job waits for all). */
  nodes?: { name: string; address: string; jobReadyMs?: number; cloudInitDoneMs?: number; serialLog: string }[];
  mpiMs?: number;
  mpiOutput?: string;
  /** ib_send_bw between vnode01 and vnode02: "#bytes #iterations BW peak BW average MsgRate". */
  rdmaBetweenVms?: string;
}

/** One VM of the rehearsal. */
export interface NodeVm {
  spec: NodeSpec | undefined;
  /** Prefix of its check ids: '' for a single VM, 'vnode01/' with several. */
  prefix: string;
  label: string;
  serialLog: string;
  overlay: string;
  seed: string;
  target: SshTarget;
  vm?: VmRunner;
  tail?: SerialTail;
  started: number;
  result?: { ok: boolean; at: number };
  jobReadyMs?: number;
  cloudInitDoneMs?: number;
  /** The guest's own check lines, as it reported them. */
  guest: RehearsalCheck[];
  /** Fields the guest's checks handed over (GUESTFORGE-DATA lines), by check id then key. */
  data: Map<string, Record<string, string>>;
}


/** One rehearsal under way: what every phase reads and adds to. */
export interface Rehearsal {
  o: RehearseOptions;
  cluster: Cluster;
  nonce: string;
  log: Logger;
  multi: boolean;
  nodes: NodeVm[];
  checks: RehearsalCheck[];
  report: RehearsalReport;
  add(id: string, ok: boolean, detail: string, ms?: number): void;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
