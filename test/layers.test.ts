/**
 * The architecture as a test: src/'s folders in layers, from the commands at the top to the
 * model at the bottom. An import (type imports included) may go sideways to a folder of its own
 * layer or down, never up; no two folders import each other, even inside one layer; src/model/
 * imports nothing of the project. The README's "Where the code lives" names the same layers.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const src = resolve(import.meta.dirname, '..', 'src');

/** Top to bottom. A folder's files, or a top-level file by its name. */
export const layers: string[][] = [
  ['cli.ts', 'commands'],
  ['pipeline', 'rehearse', 'debug'],
  ['loader'],
  ['os'],
  ['stages'],
  ['publish', 'smoke', 'verify', 'cache'],
  ['cloudinit', 'cluster'],
  ['profile'],
  ['guestfs', 'vm'],
  ['policy'],
  ['exec'],
  ['host', 'util', 'report', 'errors.ts', 'log.ts'],
  ['os-format'],
  ['model'],
];

/**
 * The families' parts of the file format (os/format.ts, os/linux-format.ts, os/<family>/format.ts):
 * each family's `os` section of the profile and its boot trims. They live in the drivers' folders
 * (only a family's folder names it) but are data that import nothing but zod and the model, so
 * they are a unit of their own near the bottom: the profile schema and policy/ read them without
 * importing the drivers.
 */
export const formatFile = /^os\/([a-z]+\/)?([a-z]+-)?format\.ts$/;

/**
 * Imports allowed to go up a layer (at most five), each with its reason. Key: "from-file -> to-file".
 */
const exceptions: Record<string, string> = {};

interface Edge { from: string; to: string; typeOnly: boolean }

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative import of src/: static, re-exports, type-only and dynamic ones. */
export function importsOf(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sourceFiles(src)) {
    const text = readFileSync(file, 'utf8');
    const found = [
      ...[...text.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm)].map((m) => ({ spec: m[2]!, typeOnly: Boolean(m[1]) })),
      ...[...text.matchAll(/\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g)].map((m) => ({ spec: m[1]!, typeOnly: false })),
    ];
    for (const { spec, typeOnly } of found) edges.push({ from: relative(src, file), to: relative(src, resolve(dirname(file), spec)), typeOnly });
  }
  return edges;
}

/** The layer unit of a file: its top folder under src/, or its own name at the top (the families' format files: os-format). */
export const unitOf = (file: string): string => (formatFile.test(file) ? 'os-format' : file.split('/')[0]!);

const layerOf = (unit: string): number => layers.findIndex((l) => l.includes(unit));

const edges = importsOf();
const Layers = suite('layers');

Layers('every folder and top-level file of src/ is in exactly one layer', () => {
  const units = [...new Set(sourceFiles(src).map((f) => unitOf(relative(src, f))))].sort();
  // A name in layers is a folder or top-level file; os-format is a set of files inside os/.
  assert.ok(units.length > 10, `found ${units.length} units under src/`);
  const missing = units.filter((u) => layerOf(u) < 0);
  assert.equal(missing, [], `not in any layer: ${missing.join(', ')}`);
  const all = layers.flat();
  assert.equal(all.length, new Set(all).size, 'a unit is listed twice');
  const gone = all.filter((u) => !units.includes(u));
  assert.equal(gone, [], `listed but not in src/: ${gone.join(', ')}`);
});

Layers('the import reader sees static, type, re-export and dynamic imports', () => {
  const has = (from: string, to: string, typeOnly?: boolean) => edges.some((e) => e.from === from && e.to === to && (typeOnly === undefined || e.typeOnly === typeOnly));
  assert.ok(edges.length > 300, `${edges.length} imports`);
  assert.ok(has('cli.ts', 'commands/build.ts'), 'a dynamic import of the CLI');
  assert.ok(edges.some((e) => e.typeOnly), 'some type-only import');
});

Layers('no import goes up a layer (type imports included), beyond the listed exceptions', () => {
  const up = edges
    .filter((e) => layerOf(unitOf(e.from)) > layerOf(unitOf(e.to)))
    .map((e) => `${e.from} -> ${e.to}${e.typeOnly ? ' (type)' : ''}`);
  const unexplained = up.filter((line) => !(line.replace(' (type)', '') in exceptions));
  assert.equal(unexplained, [], `imports that go up a layer:\n${unexplained.join('\n')}`);
  assert.ok(Object.keys(exceptions).length <= 5, 'at most five exceptions');
  for (const key of Object.keys(exceptions)) assert.ok(up.some((line) => line.replace(' (type)', '') === key), `a stale exception: ${key}`);
});

Layers('no two folders import each other, even inside one layer', () => {
  const pairs = new Set(edges.filter((e) => unitOf(e.from) !== unitOf(e.to)).map((e) => `${unitOf(e.from)} -> ${unitOf(e.to)}`));
  const cycles = [...pairs].filter((p) => {
    const [a, b] = p.split(' -> ');
    return a! < b! && pairs.has(`${b} -> ${a}`);
  });
  assert.equal(cycles, [], `folders that import each other: ${cycles.join(', ')}`);
});

Layers('the families\' format files import only each other and the model', () => {
  const formatFiles = sourceFiles(src).map((f) => relative(src, f)).filter((f) => formatFile.test(f));
  assert.ok(formatFiles.includes('os/format.ts') && formatFiles.includes('os/linux-format.ts') && formatFiles.filter((f) => f.split('/').length === 3).length >= 3, formatFiles.join(' '));
  const out = edges.filter((e) => unitOf(e.from) === 'os-format' && !['os-format', 'model'].includes(unitOf(e.to))).map((e) => `${e.from} -> ${e.to}`);
  assert.equal(out, []);
  // Packages and node: modules too (the import reader above sees only the project's own files): zod alone.
  const bare = formatFiles.flatMap((f) => [...readFileSync(join(src, f), 'utf8').matchAll(/(?:from\s+|import\s*\(\s*|^\s*import\s+)['"]([^'"./][^'"]*)['"]/gm)].map((m) => `${f}: ${m[1]}`));
  assert.equal(bare.filter((b) => !b.endsWith(': zod')), []);
  assert.ok(bare.some((b) => b.endsWith(': zod')), 'the reader sees a package import');
  assert.ok(edges.some((e) => e.from === 'profile/schema.ts' && unitOf(e.to) === 'os-format'), 'the profile schema reads the os sections');
});

Layers('src/model/ imports nothing of the project', () => {
  const out = edges.filter((e) => unitOf(e.from) === 'model' && unitOf(e.to) !== 'model').map((e) => `${e.from} -> ${e.to}`);
  assert.ok(edges.some((e) => unitOf(e.to) === 'model'), 'something imports the model');
  assert.equal(out, []);
});

/** A source file's code without its comment lines (a comment may name a tool or a family). */
const codeOf = (file: string) => readFileSync(file, 'utf8').split('\n').map((line, i) => ({ line, at: i + 1 })).filter(({ line }) => !/^\s*(\/\/|\*|\/\*)/.test(line));

/** A quoted program name as it starts an argv or a shell string: 'qemu-img', "virsh …", `qemu-img convert …`. */
export const toolCall = /['"`](qemu-img|virsh)(['"`]|\s)/;

Layers('no file outside src/vm/ runs qemu-img or virsh (host/tools.ts names every program, as data)', () => {
  assert.ok(toolCall.test("run(['qemu-img', 'info'])") && toolCall.test('sh -c "virsh list"') && toolCall.test('`qemu-img convert ${a}`'), 'the pattern sees argv and shell strings');
  assert.not.ok(toolCall.test('the disk failed qemu-img check'), 'words for people are not calls');
  const offenders: string[] = [];
  for (const file of sourceFiles(src)) {
    const rel = relative(src, file);
    if (rel.startsWith('vm/') || rel === 'host/tools.ts') continue;
    for (const { line, at } of codeOf(file)) if (toolCall.test(line)) offenders.push(`${rel}:${at}: ${line.trim()}`);
  }
  assert.equal(offenders, []);
  assert.ok(codeOf(join(src, 'vm', 'qemu-img.ts')).some(({ line }) => toolCall.test(line)), 'the door itself is seen by the same pattern');
});

/**
 * A family named in code: a quoted family name anywhere (a comparison, a case, a call, a list), or
 * an import of a family's folder. Only the files of src/os/<family>/ may (its format.ts declares
 * the family's os section and trims; os/format.ts gathers them by import, without naming one).
 */
export const familyNamed = /['"`](debian|redhat|osv)['"`]|(from\s+|import\()\s*['"][./]*\/?os\/(debian|redhat|osv)\//;

Layers('no code outside src/os/<family>/ names a family', () => {
  for (const seen of ["family === 'osv'", "case 'debian':", "driverFor('redhat')", "import { x } from '../os/osv/cmdline.ts';", "await import('../../os/debian/index.ts')", "families: ['debian'],", "z.literal('redhat')"]) assert.ok(familyNamed.test(seen), seen);
  assert.not.ok(familyNamed.test("import { debian } from './debian/index.ts';"), 'the registry in os/index.ts imports each family by its own folder');
  const offenders: string[] = [];
  for (const file of sourceFiles(src)) {
    const rel = relative(src, file);
    if (/^os\/(debian|redhat|osv)\//.test(rel)) continue;
    for (const { line, at } of codeOf(file)) if (familyNamed.test(line)) offenders.push(`${rel}:${at}: ${line.trim()}`);
  }
  assert.equal(offenders, [], 'family knowledge outside its driver');
  assert.ok(codeOf(join(src, 'os', 'debian', 'format.ts')).some(({ line }) => familyNamed.test(line)), 'a family\'s own folder is seen by the same pattern');
});

Layers.run();
