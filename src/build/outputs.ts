/** Writing outputs: convert through a temp name, rename, record checksums. */
import { readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { run } from '../exec/run.ts';
import type { DiskRef, OutputFile } from '../stages/types.ts';
import { sha256File, tempPathFor, writeFileAtomic } from '../util/fs.ts';

export type Compression = 'zstd' | 'zlib' | 'none';

/** Pure: the qemu-img command that makes a standalone output from a backing chain. */
export function convertArgs(source: DiskRef, format: 'qcow2' | 'raw', compress: Compression, target: string): string[] {
  const argv = ['qemu-img', 'convert', '-f', source.format, '-O', format, '-m', '8', '-W'];
  if (format === 'qcow2') {
    if (compress !== 'none') argv.push('-c', '-o', `compression_type=${compress}`);
  }
  argv.push(source.path, target);
  return argv;
}

/** Convert to `target` via a temp file next to it; a failure leaves nothing at `target`. */
export async function convertImage(
  source: DiskRef,
  format: 'qcow2' | 'raw',
  compress: Compression,
  target: string,
  signal?: AbortSignal,
): Promise<OutputFile> {
  const temp = tempPathFor(target);
  try {
    await run(convertArgs(source, format, compress, temp), { timeoutMs: 60 * 60_000, ...(signal ? { cancelSignal: signal } : {}) });
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return { path: target, format, bytes: (await stat(target)).size, sha256: await sha256File(target) };
}

/** Update SHA256SUMS in the output folder: our files' lines replaced, others kept. */
export async function updateSums(outDir: string, files: OutputFile[], drop: string[] = []): Promise<void> {
  const sums = join(outDir, 'SHA256SUMS');
  const names = new Set([...files.map((f) => basename(f.path)), ...drop]);
  const old = await readFile(sums, 'utf8').catch(() => '');
  const kept = old.split('\n').filter((line) => line.trim() && !names.has(line.replace(/^[0-9a-f]{64} [ *]/, '')));
  const lines = [...kept, ...files.map((f) => `${f.sha256}  ${basename(f.path)}`)].sort((a, b) => a.slice(66).localeCompare(b.slice(66)));
  if (lines.length === 0) await rm(sums, { force: true });
  else await writeFileAtomic(sums, `${lines.join('\n')}\n`);
}

export async function toolVersions(tools: string[][]): Promise<Record<string, string>> {
  const versions: Record<string, string> = {};
  for (const argv of tools) {
    const r = await run(argv, { allowFailure: true, timeoutMs: 30_000 }).catch(() => undefined);
    const line = `${r?.stdout ?? ''}${r?.stderr ?? ''}`.split('\n').find((l) => l.trim());
    versions[argv[0]!] = line?.trim() ?? 'unknown';
  }
  return versions;
}

export function outputDir(path: string): string {
  return dirname(path);
}
