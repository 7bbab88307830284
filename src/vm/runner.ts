/** What the watch loop and the rehearsal need of a running VM, whoever runs it (qemu as our child, a libvirt domain). */
import type { VmSpec } from './qemu-args.ts';

/**
 * A running VM, whatever runs it: qemu as our child, or a libvirt domain.
 * The watch loop (watch.ts) only needs these.
 */
export interface VmRunner {
  /** What was started, for the log and the outcome. */
  readonly argv: string[];
  /** Wait up to `ms`; returns early when the VM stops. */
  wait(ms: number): Promise<void>;
  stopped(): Promise<boolean>;
  /** Ask the guest to power off (ACPI). */
  powerdown(): Promise<void>;
  /** Stop it now; safe to call twice. */
  stop(): Promise<void>;
  /** Bring the serial log file up to date (a remote domain's log is copied back). */
  sync?(): Promise<void>;
  /** Why it stopped when it did not start or crashed, if it knows. */
  failure(): Promise<string | undefined>;
  /**
   * Remove everything it made (libvirt: the domain, the volumes), told
   * whether the boot succeeded (a remote build VM's disk comes back only then).
   */
  dispose?(ended: { ok: boolean }): Promise<void>;
  /**
   * Leave it running when guestforge exits (`--on-error keep`); only a VM
   * started with a console socket can be. Returns its pid.
   */
  release?(): number;
}

/** A VM left running for an admin to look into (`--on-error keep`). */
export interface RunningVm {
  pid: number;
  consoleSocket: string;
  qmpSocket: string;
  /** 127.0.0.1 port forwarded to the guest's SSH (with --debug-ssh-key). */
  sshPort?: number;
  /**
   * The guest set the one-time root password (it reported an error and found
   * the debug files on its seed). A VM that hung or timed out never got there.
   */
  loginOpened: boolean;
  /** Stop it now (the admin chose clean-up or retry instead). */
  stop(): Promise<void>;
}

export type VmStarter = (spec: VmSpec, label: string) => Promise<VmRunner>;
