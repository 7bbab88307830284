/**
 * The cluster's guest requirements as records: id, title, severity, why, and
 * a check over the facts read from the image. The README's rule table is
 * generated from this list.
 */
import { parse } from 'yaml';
import { layoutRules } from '../policy/layout.ts';
import type { FileHead, GuestFacts } from './facts.ts';
import type { Rule, RuleResult } from './types.ts';

const pass = (evidence: string): RuleResult => ({ verdict: 'pass', evidence });
const fail = (evidence: string): RuleResult => ({ verdict: 'fail', evidence });
const warn = (evidence: string): RuleResult => ({ verdict: 'warn', evidence });
const skip = (evidence: string): RuleResult => ({ verdict: 'skip', evidence });

export type Family = 'debian' | 'redhat';

export function osFamily(os: Record<string, string>): Family | undefined {
  const ids = [os.ID ?? '', ...(os.ID_LIKE ?? '').split(/\s+/)].map((s) => s.toLowerCase());
  if (ids.some((id) => id === 'debian' || id === 'ubuntu')) return 'debian';
  if (ids.some((id) => ['rhel', 'fedora', 'centos', 'rocky', 'almalinux'].includes(id))) return 'redhat';
  return undefined;
}

/** datasource_list as cloud-init would end up with it: the last file that sets it wins. */
export function effectiveDatasourceList(configs: GuestFacts['cloudConfigs']): { list?: string[]; from?: string; broken: string[] } {
  let list: string[] | undefined;
  let from: string | undefined;
  const broken: string[] = [];
  for (const { path, text } of configs) {
    try {
      const value = parse(text, { version: '1.1' }) as Record<string, unknown> | null;
      const ds = value?.datasource_list;
      if (Array.isArray(ds)) {
        list = ds.map(String);
        from = path;
      }
    } catch {
      broken.push(path);
    }
  }
  return { ...(list ? { list, from } : {}), broken };
}

const rdmaPackages: Record<Family, string[]> = {
  debian: ['rdma-core', 'ibverbs-providers'],
  redhat: ['rdma-core', 'libibverbs'],
};

/** vRDMA rules are skipped unless the profile or --require vrdma asks for them. */
function onlyWithVrdma(check: Rule['check']): Rule['check'] {
  return (facts, options) => (options.requireVrdma ? check(facts, options) : skip('vRDMA not required'));
}

export const rules: Rule[] = [
  {
    id: 'os.family',
    title: 'Debian or RedHat-family guest',
    severity: 'error',
    why: 'guestforge and the cluster support these families only',
    check: (f) => {
      const family = osFamily(f.osRelease);
      const name = f.osRelease.PRETTY_NAME ?? f.osRelease.ID ?? 'no /etc/os-release';
      return family ? pass(`${name} (${family} family, version ${f.osRelease.VERSION_ID ?? '?'})`) : fail(`unknown OS: ${name}`);
    },
  },
  {
    id: 'cloud-init.installed',
    title: 'cloud-init installed',
    severity: 'error',
    why: 'the batch system configures each VM through a NoCloud seed',
    check: (f) => {
      const version = f.packages.get('cloud-init');
      if (version) return pass(`cloud-init ${version} (${f.packageSource} database)`);
      return fail(f.packageSource === 'none' ? 'no package database found' : `cloud-init is not in the ${f.packageSource} database`);
    },
  },
  {
    id: 'cloud-init.nocloud',
    title: 'NoCloud datasource enabled',
    severity: 'error',
    why: 'the cluster boots every VM with a NoCloud seed (cloud-localds)',
    check: (f) => {
      const { list, from, broken } = effectiveDatasourceList(f.cloudConfigs);
      const note = broken.length ? ` (unreadable: ${broken.join(', ')})` : '';
      if (!list) return warn(`no datasource_list set: ds-identify decides${note}`);
      const shown = `[${list.join(', ')}] from ${from}${note}`;
      return list.includes('NoCloud') ? pass(shown) : fail(`NoCloud missing: ${shown}`);
    },
  },
  ...layoutRules.map((r): Rule => ({ id: r.id, title: r.title, severity: 'error', why: r.why, check: r.verify })),
  {
    id: 'vrdma.packages',
    title: 'RDMA userspace installed',
    severity: 'error',
    why: 'verbs applications need rdma-core and the verbs providers',
    check: onlyWithVrdma((f, o) => {
      const family = osFamily(f.osRelease) ?? 'debian';
      const missing = rdmaPackages[family].filter((p) => !f.packages.has(p));
      return missing.length ? fail(`missing: ${missing.join(', ')}`) : pass(rdmaPackages[family].map((p) => `${p} ${f.packages.get(p)}`).join(', '));
    }),
  },
  {
    id: 'vrdma.kernel',
    title: 'every kernel has rdma_rxe',
    severity: 'error',
    why: 'soft-RoCE needs the rdma_rxe module (Debian\'s cloud kernel has none)',
    check: onlyWithVrdma((f, o) => {
      if (f.kernels.length === 0) return fail('no kernel in /boot');
      const without = f.kernels.filter((k) => (f.rxeModules[k] ?? []).length === 0);
      return without.length ? fail(`kernel without rdma_rxe: ${without.join(', ')}`) : pass(`rdma_rxe in ${f.kernels.join(', ')}`);
    }),
  },
  {
    id: 'vrdma.boot',
    title: 'soft-RoCE set up at boot',
    severity: 'error',
    why: '`rdma link add` does not persist: something must load rdma_rxe and add the link at boot',
    check: onlyWithVrdma((f, o) => {
      const load = f.modulesLoad.find((m) => /^\s*rdma_rxe\s*$/m.test(m.text));
      const unit = f.systemdUnits.find((u) => u.startsWith('guestforge-vrdma'));
      if (load && unit) return pass(`${load.path} loads rdma_rxe; ${unit} adds the link`);
      return fail([load ? '' : 'rdma_rxe not in modules-load.d', unit ? '' : 'no guestforge-vrdma unit'].filter(Boolean).join('; '));
    }),
  },
  {
    id: 'hygiene.cloud-init-state',
    title: 'no cloud-init instance state',
    severity: 'error',
    why: 'every job VM gets the same instance-id: left-over state silently skips per-instance modules (runcmd, mounts)',
    check: (f) => (f.cloudInstances.length ? fail(`/var/lib/cloud/instances holds ${f.cloudInstances.join(', ')}`) : pass('none')),
  },
  {
    id: 'hygiene.machine-id',
    title: 'no machine-id of its own',
    severity: 'error',
    why: 'VMs cloned from one image must not share a machine-id (DHCP client ids, journald); an empty or missing /etc/machine-id, or `uninitialized` (systemd\'s first-boot marker, machine-id(5)), makes systemd generate one at first boot',
    check: (f) => {
      const bad = [
        ...(machineIdState(f.machineId) === 'an id' ? [`/etc/machine-id holds an id (${f.machineId!.bytes} bytes): every VM of the image would share it`] : []),
        ...(machineIdState(f.dbusMachineId) === 'an id' ? [`/var/lib/dbus/machine-id is a file of its own holding an id (${f.dbusMachineId!.bytes} bytes)`] : []),
      ];
      return bad.length ? fail(bad.join('; ')) : pass(`/etc/machine-id ${machineIdState(f.machineId)}`);
    },
  },
  {
    id: 'hygiene.ssh-host-keys',
    title: 'no SSH host keys',
    severity: 'error',
    why: 'VMs cloned from one image must not share host keys',
    check: (f) => (f.sshHostKeys.length ? fail(f.sshHostKeys.join(', ')) : pass('none')),
  },
  {
    id: 'hygiene.root-password',
    title: 'no usable password for any uid-0 account',
    severity: 'error',
    why: 'a password baked into an image is shared by every VM; root by another name (uid 0) is still root',
    check: (f) => {
      const zeros = f.passwd.filter((u) => u.uid === 0).map((u) => u.name);
      if (zeros.length === 0) return warn('no uid-0 account in /etc/passwd');
      const said = zeros.map((n) => `${n}: ${f.passwords[n] ?? 'no shadow entry'}`);
      const bad = zeros.filter((n) => f.passwords[n] === 'empty' || f.passwords[n] === 'usable');
      return bad.length ? fail(`uid-0 account(s) with a password: ${said.join(', ')}`) : pass(said.join(', '));
    },
  },
  {
    id: 'hygiene.ssh-passwords',
    title: 'sshd takes no passwords when accounts have them',
    severity: 'error',
    why: 'every VM of the image is reachable with the same password; the batch system logs in with keys',
    check: (f) => {
      if (f.sshdConfigs.length === 0) return pass('no sshd configuration');
      const empty = sshdSetting(f.sshdConfigs, 'PermitEmptyPasswords');
      if (empty?.value === 'yes') return fail(`PermitEmptyPasswords yes (${empty.from})`);
      const auth = sshdSetting(f.sshdConfigs, 'PasswordAuthentication');
      // Keyboard-interactive through PAM asks for the same password (OpenSSH's defaults: yes and no).
      const kbd = sshdSetting(f.sshdConfigs, 'KbdInteractiveAuthentication') ?? sshdSetting(f.sshdConfigs, 'ChallengeResponseAuthentication');
      const pam = sshdSetting(f.sshdConfigs, 'UsePAM');
      const viaKbd = (kbd?.value ?? 'yes') === 'yes' && pam?.value === 'yes';
      const allowed = (auth?.value ?? 'yes') === 'yes' || viaKbd;
      const withPassword = Object.entries(f.passwords).filter(([, s]) => s !== 'locked').map(([n, s]) => `${n} (${s})`);
      const how = viaKbd && (auth?.value ?? 'yes') !== 'yes'
        ? `KbdInteractiveAuthentication ${kbd ? `${kbd.value} (${kbd.from})` : 'yes (the default)'} with UsePAM yes (${pam!.from})`
        : `PasswordAuthentication ${auth ? `${auth.value} (${auth.from})` : 'yes (the default)'}`;
      if (allowed && withPassword.length) return fail(`${how}, and ${withPassword.join(', ')} have passwords`);
      return pass(`${how}; accounts with a password: ${withPassword.join(', ') || 'none'}`);
    },
  },
];

/**
 * Pure: sshd's effective global value of `key` (lower-cased), the way sshd
 * reads its files: first value wins, `Include` is read where it stands
 * (relative to /etc/ssh), `Match` blocks are not global. Undefined when unset.
 */
export function sshdSetting(configs: GuestFacts['sshdConfigs'], key: string): { value: string; from: string } | undefined {
  const byPath = new Map(configs.map((c) => [c.path, c.text]));
  const globToRegex = (g: string) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
  const read = (path: string, depth: number): { value: string; from: string } | undefined => {
    const text = byPath.get(path);
    if (text === undefined || depth > 8) return undefined;
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*/, '').trim();
      const m = /^(\S+)\s*(?:=\s*|\s+)(.*)$/.exec(line);
      if (!m) continue;
      const [, word, rest] = m;
      if (word!.toLowerCase() === 'match') return undefined; // the rest of this file is conditional
      if (word!.toLowerCase() === 'include') {
        for (const pattern of rest!.split(/\s+/)) {
          const full = pattern.startsWith('/') ? pattern : `/etc/ssh/${pattern}`;
          const re = globToRegex(full);
          for (const p of [...byPath.keys()].filter((k) => re.test(k)).sort()) {
            const found = read(p, depth + 1);
            if (found) return found;
          }
        }
        continue;
      }
      if (word!.toLowerCase() === key.toLowerCase()) return { value: rest!.trim().replace(/^"(.*)"$/, '$1').toLowerCase(), from: path };
    }
    return undefined;
  };
  return read('/etc/ssh/sshd_config', 0);
}

/** What systemd makes of a machine-id file at first boot (machine-id(5)): absent, empty and `uninitialized` all get a fresh id. */
export function machineIdState(file: FileHead | undefined): 'absent' | 'empty' | 'uninitialized (systemd\'s first-boot marker)' | 'an id' {
  if (!file) return 'absent';
  if (file.bytes === 0 || file.head.trim() === '') return 'empty';
  if (file.head.trim() === 'uninitialized') return 'uninitialized (systemd\'s first-boot marker)';
  return 'an id';
}
