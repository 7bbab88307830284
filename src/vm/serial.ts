/**
 * Reading a guest's serial console from its log file. Output has CRLF and
 * terminal escape codes, so it is read as bytes and cleaned per line. The
 * guest reports through lines of the form
 *   GUESTFORGE-RESULT:<nonce>:ok|error[:detail]
 *   GUESTFORGE-CHECK:<nonce>:<id> pass|fail|warn <detail>
 *   GUESTFORGE-WARN:<nonce>:<message>
 *   GUESTFORGE-TIMING:<nonce>:<kind> <figures>   (smoke: where the boot's time went)
 *   GUESTFORGE-DATA:<nonce>:<check id> <key> <value>   (a field of that check, for the host to use)
 *   GUESTFORGE-PLOT:<nonce>:<base64>|end|none   (smoke: the boot's systemd-analyze plot, gzipped, after the result)
 * where the nonce is fresh per boot, so stale text cannot pass for a result.
 */
import { chmod, open, writeFile } from 'node:fs/promises';
import type { CheckLine } from '../model/smoke.ts';
import { withoutControls } from '../util/text.ts';

/**
 * An empty console log, owner-only (the console shows what cloud-init and the
 * commands print; qemu and libvirt keep the mode of a file that exists).
 * Both VM starters call it, so no caller has to.
 */
export async function freshConsoleLog(path: string): Promise<void> {
  await writeFile(path, '', { mode: 0o600 });
  await chmod(path, 0o600);
}

export type SerialEvent =
  | { kind: 'result'; ok: boolean; detail: string }
  | { kind: 'check'; check: CheckLine }
  | { kind: 'warn'; message: string }
  | { kind: 'timing'; text: string }
  /** A field a check hands the host (rehearse: the RDMA device the guest made), as a field, not in its words. */
  | { kind: 'data'; id: string; key: string; value: string }
  /** A line of the smoke VM's boot plot (gzip in base64), "end" after the last, or "none" when the guest made none. */
  | { kind: 'plot'; chunk: string }
  | { kind: 'panic'; line: string }
  /** A failed build VM kept for debugging opened its console to root (report.sh set the one-time password). */
  | { kind: 'kept'; open: 'console' }
  /** The seed's bootcmd ran: cloud-init found the NoCloud seed. */
  | { kind: 'started' }
  | { kind: 'login' };

export function cleanLine(line: string): string {
  return withoutControls(line).replace(/\r/g, '').trimEnd();
}

export function parseSerialLine(line: string, nonce: string): SerialEvent | undefined {
  const clean = cleanLine(line);
  const tagAt = clean.indexOf('GUESTFORGE-');
  if (tagAt >= 0) {
    const text = clean.slice(tagAt);
    const result = new RegExp(`^GUESTFORGE-RESULT:${nonce}:(ok|error)(?::(.*))?$`).exec(text);
    if (result) return { kind: 'result', ok: result[1] === 'ok', detail: result[2] ?? '' };
    const check = new RegExp(`^GUESTFORGE-CHECK:${nonce}:(\\S+) (pass|fail|warn) ?(.*)$`).exec(text);
    if (check) return { kind: 'check', check: { id: check[1]!, status: check[2] as CheckLine['status'], detail: check[3] ?? '' } };
    const warn = new RegExp(`^GUESTFORGE-WARN:${nonce}:(.*)$`).exec(text);
    if (warn) return { kind: 'warn', message: warn[1] ?? '' };
    const data = new RegExp(`^GUESTFORGE-DATA:${nonce}:(\\S+) ([\\w.-]+) (.*)$`).exec(text);
    if (data) return { kind: 'data', id: data[1]!, key: data[2]!, value: data[3]! };
    const plot = new RegExp(`^GUESTFORGE-PLOT:${nonce}:([A-Za-z0-9+/=]{1,76}|end|none)$`).exec(text);
    if (plot) return { kind: 'plot', chunk: plot[1]! };
    const timing = new RegExp(`^GUESTFORGE-TIMING:${nonce}:(.*)$`).exec(text);
    if (timing) return { kind: 'timing', text: timing[1] ?? '' };
    if (new RegExp(`^GUESTFORGE-KEPT:${nonce}:console$`).test(text)) return { kind: 'kept', open: 'console' };
    // A kernel message may share the console line: the tag, then anything but more of a nonce.
    if (new RegExp(`^GUESTFORGE-STARTED:${nonce}(?![0-9a-zA-Z])`).test(text)) return { kind: 'started' };
  }
  if (/Kernel panic - not syncing/.test(clean)) return { kind: 'panic', line: clean };
  if (/\blogin:$/.test(clean)) return { kind: 'login' };
  return undefined;
}

/**
 * Pure: GRUB's own console lines as Debian's grub.cfg prints them before it reads the kernel and
 * the initramfs through the firmware ("Loading Linux 6.12.… ...", "Loading initial ramdisk ...").
 * The watcher notes when each first appears, so the time before the kernel splits into firmware
 * plus GRUB's start, the kernel's read and the initramfs's read. Figures only: a guest that forges
 * one skews its own timing, nothing else.
 */
export function bootLoaderMark(line: string): 'kernel' | 'initrd' | undefined {
  const clean = cleanLine(line);
  // Under OVMF, GRUB's "console" terminal is the firmware's, which OVMF copies to the serial port: each line twice, on one line.
  if (/^\s*(?:Loading Linux \S+ \.\.\.){1,2}\s*$/.test(clean)) return 'kernel';
  if (/^\s*(?:Loading initial ramdisk \.\.\.){1,2}\s*$/.test(clean)) return 'initrd';
  return undefined;
}

/** Follows a growing log file, line by line. */
export class SerialTail {
  private offset = 0;
  private partial = '';
  readonly lines: string[] = [];

  constructor(private readonly path: string) {}

  /** Read what was appended since the last call; returns the new complete lines. */
  async poll(): Promise<string[]> {
    const handle = await open(this.path, 'r').catch(() => undefined);
    if (!handle) return [];
    try {
      const { size } = await handle.stat();
      if (size <= this.offset) return [];
      const buffer = Buffer.alloc(size - this.offset);
      await handle.read(buffer, 0, buffer.length, this.offset);
      this.offset = size;
      const text = this.partial + buffer.toString('latin1');
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      const fresh = parts.map(cleanLine);
      this.lines.push(...fresh);
      return fresh;
    } finally {
      await handle.close();
    }
  }

  /** The last n non-empty lines, for error reports. */
  tail(n: number): string[] {
    const all = this.partial ? [...this.lines, cleanLine(this.partial)] : this.lines;
    // The smoke VM's plot comes in base64 lines after its result: they would crowd out what matters.
    return all.filter((l) => l.trim() !== '' && !l.includes('GUESTFORGE-PLOT:')).slice(-n);
  }
}

/** The seed's first bootcmd: one line on the console as soon as cloud-init has read the seed. */
export function startedBootcmd(nonce: string): string[] {
  return ['sh', '-c', `c=/dev/ttyS0; [ -w "$c" ] || c=/dev/console; echo GUESTFORGE-STARTED:${nonce} > "$c"`];
}
