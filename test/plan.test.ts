import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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
plan('a reader that stops early (| head) ends nothing badly: exit 0, no EPIPE crash', async () => {
  const cli = join(root, 'bin', 'guestforge.js');
  // Far more than a pipe holds (64 KiB), so writes are still going when head has gone.
  const dir = await mkdtemp(join(tmpdir(), 'gf-epipe-'));
  try {
    const profile = join(dir, 'big.yaml');
    await writeFile(profile, `extends: ${join(root, 'profiles', 'debian-13-hpc.yaml')}\nname: big\ncloudInit:\n  userData:\n    write_files:\n      - path: /etc/big\n        content: "${'x'.repeat(400_000)}"\n`);
    // It extends a shipped profile from a folder of its own: the admin allows profiles/.
    const r = await execa('bash', ['-c', 'node "$1" plan --json "$2" --allow-host-path "$3" | head -c 10; echo; echo "exit=${PIPESTATUS[0]}" >&2', 'bash', cli, profile, join(root, 'profiles')], { reject: false });
    assert.match(r.stdout, /^\{/);
    assert.not.match(r.stderr, /EPIPE|Unhandled|internal error/);
    assert.match(r.stderr, /exit=0$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

plan('the Debian 13 build VM\'s user-data has no system_info (deprecated since cloud-init 24.2): its bootstrapped base says it in cloud.cfg.d', async () => {
  const run = await execa('node', [join(root, 'bin', 'guestforge.js'), 'plan', '--json', join(root, 'profiles', 'debian-13-hpc.yaml')]);
  const config = parse((JSON.parse(run.stdout) as { seed: { userData: string } }).seed.userData, { version: '1.1' }) as Record<string, unknown>;
  assert.is(config.system_info, undefined);
  // The trims the build VM applies last on 13: tmp.mount masked among them.
  assert.ok((config.runcmd as string[][]).some((c) => c.join(' ') === 'systemctl mask --quiet tmp.mount'), JSON.stringify(config.runcmd));
});
plan('a base image or builder URL with user:password@ or a query token is shown redacted, in text and JSON (issue 32, item 7)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gf-plan-url-'));
  const sha = 'a'.repeat(64);
  const url = (file: string) => `https://alice:s3cret@127.0.0.1:9/${file}?token=abc`;
  try {
    const image = join(dir, 'image.yaml');
    await writeFile(image, `extends: ${join(root, 'profiles', 'rocky-9-hpc.yaml')}\nname: pinned\nbase:\n  image:\n    url: ${url('img.qcow2')}\n`);
    const builder = join(dir, 'builder.yaml');
    await writeFile(builder, `extends: ${join(root, 'profiles', 'osv-native.yaml')}\nname: pinned-builder\nbase:\n  builder:\n    url: ${url('b.elf')}\n    sha256: "${sha}"\n`);
    for (const [file, field] of [[image, 'image'], [builder, 'builder']] as const) {
      for (const json of [false, true]) {
        const r = await execa('node', [join(root, 'bin', 'guestforge.js'), 'plan', ...(json ? ['--json'] : []), file,
          // The shipped profiles these extend are outside the temp folder; osv-native's base is in shared/osv.
          '--allow-host-path', join(root, 'profiles'), '--allow-host-path', join(root, '..', 'shared', 'osv')], { reject: false, all: true, env: { XDG_CACHE_HOME: join(dir, 'cache') } });
        assert.is(r.exitCode, 0, r.all);
        assert.not.match(r.all, /s3cret|alice|token/, `${field}${json ? ' --json' : ''}`);
        if (json) {
          const shown = (JSON.parse(r.stdout) as { profile: { base: Record<string, { url: string }> } }).profile.base[field]!.url;
          assert.match(shown, /^https:\/\/<redacted>@127\.0\.0\.1:9\/\S+\?<redacted>$/);
        }
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
plan.run();
