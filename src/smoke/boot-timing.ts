/**
 * Where a smoke boot's time went, from the guest's GUESTFORGE-TIMING lines
 * (cloud-init/report.sh prints them just after its result, the uptime read just before it):
 *   phases uptime=<s> InitRDTimestampMonotonic=<µs> UserspaceTimestampMonotonic=<µs>
 *   unit <span> <unit>          systemd-analyze blame, slowest first
 *   cloud-init <stage> <ms>     from /run/cloud-init/status.json
 *   chain <tree> <unit> [@<at>] [+<took>]   systemd-analyze critical-chain to cloud-config.service
 * Pure: the smoke runner adds the host's view (time to the result line).
 */
import type { BootLoaderMarks, BootTiming } from '../model/smoke.ts';

const spanUnits: Record<string, number> = { h: 3_600_000, min: 60_000, s: 1000, ms: 1, us: 0.001, 'µs': 0.001 };

/** systemd's time spans: "1min 2.345s", "12.3s", "345ms", "1h 2min". */
export function parseSystemdSpan(text: string): number | undefined {
  const parts = text.trim().split(/\s+/);
  if (parts.length === 0 || parts[0] === '') return undefined;
  let ms = 0;
  for (const part of parts) {
    const m = /^(\d+(?:\.\d+)?)(h|min|s|ms|us|µs)$/.exec(part);
    if (!m) return undefined;
    ms += Number(m[1]) * spanUnits[m[2]!]!;
  }
  return Math.round(ms);
}

export function parseBootTiming(lines: readonly string[], resultMs?: number, loader: BootLoaderMarks = {}): BootTiming {
  const timing: BootTiming = { units: [], cloudInit: [], chain: [] };
  for (const line of lines) {
    const [kind, ...rest] = line.trim().split(/\s+/);
    if (kind === 'phases') {
      const field = (name: string) => {
        const v = rest.find((r) => r.startsWith(`${name}=`))?.slice(name.length + 1);
        return v !== undefined && /^\d+(\.\d+)?$/.test(v) ? Number(v) : undefined;
      };
      const uptimeMs = field('uptime') !== undefined ? Math.round(field('uptime')! * 1000) : undefined;
      const initrdAt = field('InitRDTimestampMonotonic');
      const userspaceAt = field('UserspaceTimestampMonotonic');
      if (userspaceAt !== undefined && userspaceAt > 0) {
        const userspaceStart = Math.round(userspaceAt / 1000);
        if (initrdAt !== undefined && initrdAt > 0) {
          timing.kernelMs = Math.round(initrdAt / 1000);
          timing.initrdMs = userspaceStart - timing.kernelMs;
        } else {
          timing.kernelMs = userspaceStart;
        }
        if (uptimeMs !== undefined && uptimeMs >= userspaceStart) timing.userspaceMs = uptimeMs - userspaceStart;
      }
      if (uptimeMs !== undefined && resultMs !== undefined && resultMs >= uptimeMs) timing.beforeKernelMs = resultMs - uptimeMs;
    } else if (kind === 'unit') {
      // "<span> <unit>": the span may have several words; the unit is the last one.
      const unit = rest.at(-1);
      const ms = parseSystemdSpan(rest.slice(0, -1).join(' '));
      if (unit && ms !== undefined && timing.units.length < 15) timing.units.push({ unit, ms });
    } else if (kind === 'chain') {
      // "└─cloud-init.service @24.1s +7.2s": the tree drawing (UTF-8, which the console reader's latin1
      // turns into other non-ASCII characters; or ASCII "`-"), the unit, then when and how long.
      const m = /^chain\s+(?:[\s|]|[^\x00-\x7f]|`-)*([\w@:.\\-]+\.(?:service|target|mount|device|socket|slice|path|timer|swap|scope))(?: @([^+]+?))?(?: \+(.+?))?\s*$/.exec(line.trim());
      if (m && timing.chain.length < 30) {
        const at = m[2] !== undefined ? parseSystemdSpan(m[2]) : undefined;
        const took = m[3] !== undefined ? parseSystemdSpan(m[3]) : undefined;
        timing.chain.push({ unit: m[1]!, ...(at !== undefined ? { atMs: at } : {}), ...(took !== undefined ? { ms: took } : {}) });
      }
    } else if (kind === 'cloud-init') {
      const [stage, ms] = rest;
      if (stage && /^[a-z-]+$/.test(stage) && ms && /^\d+$/.test(ms)) timing.cloudInit.push({ stage, ms: Number(ms) });
    }
  }
  if (timing.beforeKernelMs !== undefined && loader.kernelMs !== undefined && loader.kernelMs <= timing.beforeKernelMs) {
    const { kernelMs, initrdMs } = loader;
    const initrdSeen = initrdMs !== undefined && initrdMs >= kernelMs && initrdMs <= timing.beforeKernelMs;
    timing.beforeKernel = {
      firmwareMs: kernelMs,
      ...(initrdSeen ? { kernelReadMs: initrdMs - kernelMs, initrdReadMs: timing.beforeKernelMs - initrdMs } : {}),
    };
  }
  return timing;
}

/** A few lines for logs and the bench: phases, then the slowest units and cloud-init stages. */
export function formatBootTiming(t: BootTiming, top = 5): string[] {
  const s = (ms?: number) => (ms === undefined ? '?' : `${(ms / 1000).toFixed(1)}s`);
  const b = t.beforeKernel;
  const split = b ? ` (firmware and GRUB's start ${s(b.firmwareMs)}${b.kernelReadMs !== undefined ? `, GRUB reading the kernel ${s(b.kernelReadMs)}, the initramfs and the kernel unpacking ${s(b.initrdReadMs)}` : ''})` : '';
  const lines = [`phases: before kernel ${s(t.beforeKernelMs)}${split}, kernel ${s(t.kernelMs)}, initramfs ${s(t.initrdMs)}, userspace to report ${s(t.userspaceMs)}`];
  if (t.units.length > 0) lines.push(`slowest units: ${t.units.slice(0, top).map((u) => `${u.unit} ${s(u.ms)}`).join(', ')}`);
  if (t.cloudInit.length > 0) lines.push(`cloud-init stages: ${t.cloudInit.map((c) => `${c.stage} ${s(c.ms)}`).join(', ')}`);
  // The chain's units that took time, in boot order.
  const slowChain = [...t.chain].reverse().filter((c) => (c.ms ?? 0) >= 500);
  if (slowChain.length > 0) lines.push(`critical chain: ${slowChain.map((c) => `${c.unit} ${c.atMs !== undefined ? `@${s(c.atMs)} ` : ''}+${s(c.ms)}`).join(' → ')}`);
  return lines;
}
