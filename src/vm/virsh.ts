/**
 * The one door to virsh. A call has a budget, not a bare timeout: once it has
 * run `callMs`, the daemon is asked a question that touches no domain
 * (`virsh hostname`). A daemon that answers is alive on a slow host, and the
 * call may go on up to `ceilingMs`; one that does not answer within `pingMs`
 * is stuck, and the call is ended at once. A call that ends either way throws
 * VirshTimeout, even with allowFailure: a call cut short says nothing of what
 * the daemon did, so it is never read as an answer (a domstate that timed out
 * is not a domain that is gone, a define that timed out may still land).
 */
import { CommandError, run, type RunResult } from '../exec/run.ts';
import { UserError } from '../errors.ts';

export const defaultUri = 'qemu:///system';

export interface VirshBudget {
  /** How long a call runs before the daemon is asked whether it lives. */
  callMs: number;
  /** How long the daemon has to answer that. */
  pingMs: number;
  /** The most a call may run while the daemon answers. */
  ceilingMs: number;
}

/**
 * Measured here: define 0.02–0.08 s, start 0.4–0.7 s, undefine under 0.1 s, idle or with
 * three TCG VMs beside it; libvirtd's first qemu probe 7.6–7.9 s. A minute is far past a
 * slow host; ten is what a slow host gets when its daemon still answers.
 */
export const defaultBudget: VirshBudget = { callMs: 60_000, pingMs: 30_000, ceilingMs: 10 * 60_000 };

/** Transfers (vol-upload, vol-download) move whole disks: their first check comes later. */
export const transferBudget: VirshBudget = { callMs: 60 * 60_000, pingMs: 60_000, ceilingMs: 3 * 60 * 60_000 };

/** GUESTFORGE_VIRSH_BUDGET=CALL:CEILING[:PING] in seconds, for a host known to be slower still. */
export function budgetFromEnv(value = process.env.GUESTFORGE_VIRSH_BUDGET): VirshBudget {
  if (!value) return defaultBudget;
  const parts = value.split(':').map((p) => Number(p));
  const [call, ceiling, ping] = parts;
  if (parts.length < 2 || parts.length > 3 || parts.some((n) => !Number.isFinite(n) || n <= 0) || ceiling! < call!) {
    throw new UserError(`GUESTFORGE_VIRSH_BUDGET=${value}: expected CALL:CEILING[:PING] in seconds, CEILING ≥ CALL`, { hint: 'for example 60:600 (the default is 60:600:30)', exitCode: 2 });
  }
  return { callMs: call! * 1000, ceilingMs: ceiling! * 1000, pingMs: (ping ?? defaultBudget.pingMs / 1000) * 1000 };
}

export class VirshTimeout extends UserError {
  constructor(
    readonly args: readonly string[],
    readonly uri: string,
    readonly verdict: 'stuck' | 'slow',
    readonly ms: number,
  ) {
    const what = `virsh ${args[0] ?? ''}`.trim();
    super(verdict === 'stuck'
      ? `${what} got no answer in ${Math.round(ms / 1000)}s, and libvirtd at ${uri} did not answer virsh hostname either: the daemon is stuck`
      : `${what} did not finish in ${Math.round(ms / 1000)}s, though libvirtd at ${uri} still answers`, {
      hint: verdict === 'stuck'
        ? `check the daemon (virsh -c ${uri} list --all; its log); restart it if it stays so`
        : `the host is slower than the budget allows: raise it with GUESTFORGE_VIRSH_BUDGET=CALL:CEILING seconds (now ${Math.round(ms / 1000)}s in all)`,
    });
    this.name = 'VirshTimeout';
  }
}

export interface VirshOptions {
  allowFailure?: boolean;
  budget?: VirshBudget;
  /** Told when a call runs past callMs while the daemon answers (a slow host, not a failure yet). */
  onSlow?: (message: string) => void;
}

function argvOf(uri: string, args: readonly string[]): string[] {
  return ['virsh', '-c', uri, '-q', ...args];
}

/** A call with its budget. Throws VirshTimeout when it was cut short, CommandError on failure unless allowFailure. */
export async function virsh(uri: string | undefined, args: readonly string[], options: VirshOptions = {}): Promise<RunResult> {
  const target = uri ?? defaultUri;
  const budget = options.budget ?? budgetFromEnv();
  const started = Date.now();
  const cancel = new AbortController();
  const pinging = new AbortController();
  let verdict: 'stuck' | 'slow' | undefined;
  let finished = false;
  const check = async () => {
    const ping = await run(argvOf(target, ['hostname']), { allowFailure: true, timeoutMs: budget.pingMs, cancelSignal: pinging.signal }).catch(() => undefined);
    // The call may have ended while we asked: then it answered, whatever the ping says.
    if (finished || cancel.signal.aborted) return;
    if (!ping || ping.exitCode !== 0) {
      verdict = 'stuck';
      cancel.abort();
      return;
    }
    verdict = 'slow';
    options.onSlow?.(`virsh ${args[0] ?? ''} has run ${Math.round((Date.now() - started) / 1000)}s; libvirtd at ${target} answers, so the host is slow: waiting up to ${Math.round(budget.ceilingMs / 1000)}s`);
  };
  const timer = setTimeout(() => void check(), budget.callMs);
  try {
    const result = await run(argvOf(target, args), { allowFailure: true, timeoutMs: budget.ceilingMs, cancelSignal: cancel.signal });
    finished = true;
    if ((cancel.signal.aborted && result.exitCode !== 0) || result.timedOut) throw new VirshTimeout(args, target, cancel.signal.aborted ? 'stuck' : verdict ?? 'slow', Date.now() - started);
    if (result.exitCode !== 0 && !options.allowFailure) throw new CommandError(result);
    return result;
  } finally {
    finished = true;
    clearTimeout(timer);
    pinging.abort();
  }
}
