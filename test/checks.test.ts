/**
 * The in-guest check scripts' shared pieces, run by a real sh with fake systemctl and journalctl
 * on PATH: the failed-units check names each failed unit with its last log lines, and leaves
 * the variables of the script it is put in alone.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readChecks } from '../src/cloudinit/checks.ts';
import { readShipped } from '../src/util/project.ts';
import { timed } from './helpers/timing.ts';

const checks = timed(suite('in-guest checks (real sh, fake systemctl/journalctl)'));
const dir = await mkdtemp(join(tmpdir(), 'gf-checks-'));
checks.after(async () => rm(dir, { recursive: true, force: true }));

async function fakeTools(failed: string): Promise<string> {
  const bin = join(dir, `bin-${failed ? 'failed' : 'none'}`);
  await execa('mkdir', ['-p', bin]);
  await writeFile(join(bin, 'systemctl'), `#!/bin/sh\n[ "$1" = --failed ] && printf '%b' '${failed}'\nexit 0\n`);
  await writeFile(join(bin, 'journalctl'), '#!/bin/sh\necho "line one of $3"\necho "Failed to start $3"\n');
  await chmod(join(bin, 'systemctl'), 0o755);
  await chmod(join(bin, 'journalctl'), 0o755);
  return bin;
}

async function runUnits(failed: string) {
  const units = await readShipped('cloud-init', 'units-check.sh');
  const bin = await fakeTools(failed);
  // As rehearse-checks.sh holds it: its own $failed flag and $out must survive the check.
  const script = `failed=0\nout=/x\n${units}\nno_failed_units; rc=$?\necho "rc=$rc failed=$failed out=$out"\n`;
  return execa('sh', ['-c', script], { env: { PATH: `${bin}:${process.env.PATH}` } });
}

checks('no failed unit: pass', async () => {
  const r = await runUnits('');
  assert.match(r.stdout, /^no failed unit\nrc=0 failed=0 out=\/x$/);
});

checks('a failed unit: fail, named with its last log lines; the caller\'s variables untouched', async () => {
  const r = await runUnits('cloud-init-network.service loaded failed failed Cloud-init: Network Stage\\nfoo.mount loaded failed failed Foo\\n');
  assert.match(r.stdout, /cloud-init-network\.service: line one of cloud-init-network\.service Failed to start cloud-init-network\.service/);
  assert.match(r.stdout, /foo\.mount: line one of foo\.mount/);
  assert.match(r.stdout, /rc=1 failed=0 out=\/x$/);
});

checks('both check scripts carry the shared piece in place of their marker, and run it', async () => {
  const units = (await readShipped('cloud-init', 'units-check.sh')).trimEnd();
  assert.match(units, /\$1/, 'the piece holds shell `$` words: spliced as they are, not as replacement patterns');
  for (const name of ['smoke-checks.sh', 'rehearse-checks.sh'] as const) {
    const text = await readChecks(name);
    assert.ok(text.includes(units), `${name}: the shared piece, byte for byte`);
    assert.not.match(text, /@UNITS_CHECK@/, name);
    assert.match(text, /^no_failed_units\(\) \{$/m, name);
    assert.match(text, /^check units\.failed no_failed_units$/m, name);
    await execa('sh', ['-n', '-c', text]);
  }
});

/** One function of rehearse-checks.sh, cut out by its name, run by sh against a log of our making. */
async function runRehearseFunction(name: string, log: string, env: Record<string, string> = {}) {
  const script = await readShipped('cloud-init', 'rehearse-checks.sh');
  const body = new RegExp(`^${name}\\(\\) \\{\\n[\\s\\S]*?^\\}$`, 'm').exec(script)?.[0];
  assert.ok(body, `${name} is in rehearse-checks.sh`);
  const file = join(dir, `${name}.log`);
  await writeFile(file, log);
  return execa('sh', ['-c', `${body}\n${name}`], { env: { CLOUD_INIT_LOG: file, ...env }, reject: false });
}

// Lines as cloud-init 25.1 writes them (its module names as cloud.cfg spells them: dashes on Debian).
const stamp = '2026-12-03 00:51:10,101 - handlers.py[DEBUG]: ';
checks('cloud-init.packages: the boot-time package run\'s time, as cloud-init took it; a failed run fails', async () => {
  const ok = await runRehearseFunction('boot_packages', `${stamp}start: modules-final/config-package-update-upgrade-install: running config-package-update-upgrade-install with frequency once-per-instance\n${stamp}finish: modules-final/config-package-update-upgrade-install: SUCCESS: config-package-update-upgrade-install ran successfully and took 51.234 seconds\n`);
  assert.is(ok.exitCode, 0);
  assert.match(ok.stdout, /boot-time package run took 51\.234 s/);
  const failed = await runRehearseFunction('boot_packages', `${stamp}finish: modules-final/config-package_update_upgrade_install: FAIL: running config-package_update_upgrade_install with frequency once-per-instance took 3.100 seconds\n`);
  assert.is(failed.exitCode, 1);
  assert.match(failed.stdout, /failed after 3\.100 s/);
  const none = await runRehearseFunction('boot_packages', `${stamp}finish: modules-final/config-scripts-user: SUCCESS: config-scripts-user ran successfully and took 0.1 seconds\n`);
  assert.is(none.exitCode, 0);
  assert.match(none.stdout, /no boot-time package run/);
  // The seconds alone, for the host's report: only a run that succeeded.
  assert.is((await runRehearseFunction('packages_seconds', `${stamp}finish: modules-final/config-package-update-upgrade-install: SUCCESS: config-package-update-upgrade-install ran successfully and took 51.234 seconds\n`)).stdout, '51.234');
  assert.is((await runRehearseFunction('packages_seconds', `${stamp}finish: modules-final/config-package_update_upgrade_install: FAIL: running config-package_update_upgrade_install with frequency once-per-instance took 3.100 seconds\n`)).stdout, '');
});

checks('cloud-init.runcmd: the cluster\'s runcmd lines before the checks, timed from cloud-init\'s start of scripts-user by its log\'s UTC clock', async () => {
  // cloud-init stamps in UTC; a guest whose cluster set another timezone must read it so.
  const started = new Date(Date.now() - 42_000).toISOString();
  const log = `${started.slice(0, 10)} ${started.slice(11, 19)},${started.slice(20, 23)} - handlers.py[DEBUG]: start: modules-final/config-scripts_user: running config-scripts_user with frequency once-per-instance\n`;
  for (const TZ of ['UTC', 'Europe/Berlin', 'America/New_York']) {
    const took = Number((await runRehearseFunction('runcmd_seconds', log, { TZ })).stdout);
    assert.ok(took >= 41.5 && took < 50, `TZ=${TZ}: took ${took}`);
  }
  const none = await runRehearseFunction('runcmd_seconds', `${stamp}finish: modules-final/config-package-update-upgrade-install: SUCCESS: took 1 seconds\n`);
  assert.equal([none.exitCode, none.stdout], [0, '']);
});

checks('cloud-init.deprecations: cloud-init\'s own forms fail; other lines that say "deprecat" do not', async () => {
  for (const line of [
    'util.py[DEPRECATED]: Key "system_info" is deprecated in 24.2 and scheduled to be removed in 29.2.',
    'schema.py[INFO]: Deprecated cloud-config provided: system_info: Deprecated in version 24.2.',
  ]) {
    const r = await runRehearseFunction('no_deprecations', `${stamp.replace('handlers.py[DEBUG]: ', '')}${line}\n`);
    assert.is(r.exitCode, 1, line);
    assert.match(r.stdout, /^deprecated: /);
  }
  const harmless = await runRehearseFunction('no_deprecations', `${stamp}Writing to /var/lib/guestforge/deprecation-notes.txt\n${stamp}py.warnings[WARNING]: DeprecationWarning: datetime.utcnow()\n`);
  assert.is(harmless.exitCode, 0, harmless.stdout);
  assert.match(harmless.stdout, /no deprecation/);
});

checks.run();
