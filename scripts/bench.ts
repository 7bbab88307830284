/**
 * npm run bench [-- profile.yaml] [--runs cold,warm]
 * Builds a profile (default: the default profile) the way a user would,
 * through the CLI, and prints per-stage wall times and the image size from
 * the manifest. "cold" starts from an empty cache (mmdebstrap included),
 * "warm" reuses the bootstrapped base. A benchmark, not a test: it prints
 * figures and fails only when a build fails.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';

const root = resolve(import.meta.dirname, '..');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { runs: { type: 'string', default: 'cold,warm' } },
});
const profile = resolve(positionals[0] ?? join(root, 'profiles', 'debian-12-hpc.yaml'));
const runs = values.runs.split(',').filter(Boolean);
const work = await mkdtemp(join(tmpdir(), 'gf-bench-'));
const cache = join(work, 'cache');

interface Manifest {
  name: string;
  accel: string;
  outputs: { file: string; bytes: number }[];
  timings: { stage: string; ms: number; note?: string }[];
  smoke?: { bootMs?: number };
  base?: { cached: boolean };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

try {
  for (const kind of runs) {
    const out = join(work, `out-${kind}`);
    process.stderr.write(`bench: ${kind} build of ${profile}\n`);
    const started = Date.now();
    const r = await execa('node', [join(root, 'bin', 'guestforge.js'), 'build', profile, '-o', out], {
      env: { XDG_CACHE_HOME: cache, CI: '1' },
      reject: false,
      all: true,
    });
    const wall = Date.now() - started;
    if (r.exitCode !== 0) {
      process.stderr.write(`${r.all}\nbench: the ${kind} build failed (exit ${r.exitCode})\n`);
      process.exitCode = 1;
      break;
    }
    const files = (await execa('ls', [out])).stdout.split('\n');
    const manifestFile = files.find((f) => f.endsWith('.manifest.json'))!;
    const m = JSON.parse(await readFile(join(out, manifestFile), 'utf8')) as Manifest;
    console.log(`\n${kind} build of ${m.name} (accel ${m.accel}${m.base?.cached ? ', base from cache' : ''})`);
    for (const t of m.timings) console.log(`  ${t.stage.padEnd(10)} ${secs(t.ms).padStart(8)}  ${t.note ?? ''}`);
    console.log(`  ${'total'.padEnd(10)} ${secs(wall).padStart(8)}  (wall clock, CLI start to exit)`);
    for (const o of m.outputs) console.log(`  image      ${mib(o.bytes).padStart(8)}  ${o.file}`);
    if (m.smoke?.bootMs !== undefined) console.log(`  smoke boot ${secs(m.smoke.bootMs).padStart(8)}  to the result line`);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
