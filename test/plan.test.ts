import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';

const root = resolve(import.meta.dirname, '..');
const plan = suite('plan');
plan('prints YAML 1.1 user-data starting with #cloud-config, with layout, datasource and reporter', async () => {
  const run = await execa('node', [join(root, 'bin', 'guestforge.js'), 'plan', '--json', join(root, 'profiles', 'debian-12-hpc.yaml')]);
  const out = JSON.parse(run.stdout) as { stages: string[]; seed: { userData: string } };
  assert.equal(out.stages, ['base', 'provision', 'seal', 'inject', 'verify', 'finalize', 'smoke']);
  assert.ok(out.seed.userData.startsWith('#cloud-config\n'));
  const config = parse(out.seed.userData, { version: '1.1' }) as Record<string, any>;
  const files = (config.write_files as { path: string; content: string }[]);
  assert.ok(files.some((f) => f.path.startsWith('/etc/cloud/cloud.cfg.d/') && /datasource_list: \[ NoCloud, None \]/.test(f.content)));
  assert.ok((config.runcmd as string[][]).some((c) => c.join(' ') === 'chmod 1777 /workspace'));
  assert.is(config.power_state.mode, 'poweroff');
  assert.equal(config.users[0].name, 'hpc');
});
plan.run();
