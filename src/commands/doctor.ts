import { libvirtDaemonState } from '../vm/libvirt.ts';
import { access, readdir } from 'node:fs/promises';
import { ovmfDir, ovmfFiles } from '../vm/firmware.ts';
import { ExitCode } from '../errors.ts';
import { run } from '../exec/run.ts';
import { tools, type ToolInfo } from '../host/tools.ts';
import { probeAccel, type AccelVerdict } from '../vm/accel.ts';
import { parseCommandArgs } from './args.ts';

interface ToolReport {
  name: string;
  found: boolean;
  version?: string;
  apt: string;
  usedBy: string;
  optional: boolean;
}

export async function toolVersion(name: string, info: ToolInfo): Promise<string | undefined> {
  try {
    const result = await run([name, ...info.versionArgs], { allowFailure: true, timeoutMs: 20_000 });
    const text = `${result.stdout}\n${result.stderr}`;
    return text.split('\n').find((line) => /\d+\.\d+/.test(line))?.trim() ?? 'unknown version';
  } catch {
    return undefined;
  }
}

async function checkTools(): Promise<ToolReport[]> {
  return Promise.all(
    Object.entries(tools).map(async ([name, info]: [string, ToolInfo]) => {
      const version = await toolVersion(name, info);
      return { name, found: version !== undefined, ...(version ? { version } : {}), apt: info.apt, usedBy: info.usedBy, optional: Boolean(info.optional) };
    }),
  );
}

/** OVMF's files from Debian's ovmf package, for UEFI smoke boots and rehearsals: which are missing. */
async function missingOvmf(): Promise<string[]> {
  const files = [...new Set((['uefi', 'uefi-secure'] as const).flatMap((b) => Object.values(ovmfFiles(b)!)))];
  const missing: string[] = [];
  for (const f of files) if (!(await access(f).then(() => true, () => false))) missing.push(f);
  return missing;
}

async function hostKernels(): Promise<string[]> {
  return (await readdir('/boot').catch(() => [] as string[])).filter((n) => n.startsWith('vmlinuz-'));
}

export async function run_(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('doctor', args, { json: { type: 'boolean' }, refresh: { type: 'boolean' } });
  const [toolReports, accel, kernels, libvirt, ovmf] = await Promise.all([checkTools(), probeAccel({ refresh: values.refresh }), hostKernels(), libvirtDaemonState(), missingOvmf()]);
  const missing = toolReports.filter((t) => !t.found && !t.optional);
  const problems = [
    ...missing.map((t) => `${t.name} missing: apt-get install ${t.apt}`),
    ...(kernels.length === 0 ? ['no kernel in /boot: libguestfs needs one for its appliance (apt-get install linux-image-amd64)'] : []),
    ...(ovmf.length > 0 ? [`no OVMF firmware (${ovmf.join(', ')}): smoke and rehearse boot UEFI images under it (apt-get install ovmf)`] : []),
  ];
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ tools: toolReports, accel, hostKernels: kernels, libvirt, ovmfMissing: ovmf, problems }, null, 2)}\n`);
  } else {
    printReport(toolReports, accel, kernels, problems);
    process.stdout.write(`libvirt (only for --backend libvirt): ${libvirt}\n`);
  }
  return problems.length > 0 ? ExitCode.failure : ExitCode.ok;
}

function printReport(toolReports: ToolReport[], accel: AccelVerdict, kernels: string[], problems: string[]): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out('host tools:');
  const width = Math.max(...toolReports.map((t) => t.name.length));
  for (const t of toolReports) {
    const state = t.found ? `✔ ${t.version}` : t.optional ? `- not found (optional; ${t.apt})` : `✖ not found (apt-get install ${t.apt})`;
    out(`  ${t.name.padEnd(width)}  ${state}`);
  }
  out(`host kernel for libguestfs: ${kernels.length > 0 ? kernels.join(', ') : 'none'}`);
  out(`OVMF (UEFI boots, Secure Boot with Microsoft's keys): ${ovmfDir}${problems.some((p) => p.startsWith('no OVMF')) ? ' — missing' : ''}`);
  out('acceleration:');
  out(`  /dev/kvm: ${accel.kvmPresent ? 'present' : 'absent'}`);
  out(`  KVM usable: ${accel.kvmUsable ? 'yes' : 'no'} (${accel.reason}${accel.cached ? '; cached for this boot, --refresh to probe again' : ''})`);
  out(`  chosen: ${accel.accel.toUpperCase()}${accel.accel === 'tcg' ? ' (qemu -accel tcg -cpu max; libguestfs with LIBGUESTFS_BACKEND_SETTINGS=force_tcg)' : ''}`);
  if (problems.length > 0) {
    out('problems:');
    for (const p of problems) out(`  ✖ ${p}`);
  } else {
    out('all required tools found');
  }
}

export { run_ as run };
