/**
 * guestforge as admins install it: `npm pack` (tsc writes lib/ at prepack),
 * the tarball installed into a temporary prefix, and the installed command
 * run from there: it starts from compiled JavaScript, validates the shipped
 * profiles (reading its own schema and shipped files from the package), and
 * doctor answers.
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { shippedProfiles } from './helpers/shipped.ts';

const root = resolve(import.meta.dirname, '..');
const tmp = await mkdtemp(join(tmpdir(), 'gf-pack-'));
const p = suite('npm pack, install into a prefix, run');

p('the packed guestforge installs and runs compiled JavaScript', async () => {
  // Packed from a copy: prepack writes lib/, which the checkout's bin/ would run while other test files use it.
  const copy = join(tmp, 'checkout');
  await mkdir(copy);
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { files: string[] };
  for (const entry of [...pkg.files, 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE']) {
    if (existsSync(join(root, entry)) && entry !== 'lib') await cp(join(root, entry), join(copy, entry), { recursive: true });
  }
  await symlink(join(root, 'node_modules'), join(copy, 'node_modules'));
  const pack = await execa('npm', ['pack', '--pack-destination', tmp], { cwd: copy, reject: false, all: true });
  assert.is(pack.exitCode, 0, pack.all);
  assert.not.ok(existsSync(join(copy, 'lib')), 'postpack removes lib/ so a checkout keeps running its sources');
  assert.not.ok(existsSync(join(root, 'lib')), 'the checkout itself never gets a lib/');
  const [tarball] = (await readdir(tmp)).filter((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'a tarball was written');
  const prefix = join(tmp, 'prefix');
  const install = await execa('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(tmp, tarball!)], { reject: false, all: true });
  assert.is(install.exitCode, 0, install.all);
  const installed = join(prefix, 'lib', 'node_modules', 'guestforge');
  assert.ok(existsSync(join(installed, 'lib', 'cli.js')), 'compiled CLI shipped');
  assert.not.ok(existsSync(join(installed, 'node_modules', 'tsx')), 'tsx is a development dependency only');
  const bin = join(prefix, 'bin', 'guestforge');

  const profiles = shippedProfiles.map((p) => p.file);
  // osv-native's base is outside profiles/: its admin allows that folder, as the README says.
  const allowed = [...new Set(shippedProfiles.flatMap((p) => p.allowHostPaths))].flatMap((d) => ['--allow-host-path', d]);
  const validate = await execa(bin, ['validate', ...profiles, ...allowed], { reject: false, all: true });
  assert.is(validate.exitCode, 0, validate.all);
  for (const f of profiles) assert.match(validate.stdout, new RegExp(`${f.split('/').pop()!.replace('.', '\\.')}: ok`));

  const bad = await execa(bin, ['validate', join(root, 'test', 'fixtures', 'profiles', 'timeout.yaml'), '/nonexistent.yaml'], { reject: false, all: true });
  assert.is(bad.exitCode, 2, bad.all);

  const doctor = await execa(bin, ['doctor', '--json'], { reject: false, all: true, env: { XDG_CACHE_HOME: join(tmp, 'cache') }, timeout: 120_000 });
  const report = JSON.parse(doctor.stdout) as { tools: { name: string; found: boolean }[]; accel: { accel: string } };
  assert.ok(report.tools.find((t) => t.name === 'qemu-img')?.found, doctor.all);
  assert.ok(['kvm', 'tcg'].includes(report.accel.accel), doctor.all);
});

p.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

p.run();
