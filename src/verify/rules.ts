/**
 * The cluster's guest requirements as records: id, title, severity, why, and
 * a check over the facts read from the image. The README's rule table is
 * generated from this list.
 */
import { parse } from 'yaml';
import { layoutRules } from '../policy/layout.ts';
import type { FileHead, GuestFacts } from '../model/facts.ts';
import { readLimits } from './read.ts';
import type { GuestFamily, Rule, RuleResult } from '../model/verify.ts';
import type { BootFacts } from '../model/facts.ts';
import { claimedFirmwares } from '../policy/firmware.ts';
import { removableLoader } from './boot.ts';

/**
 * Pure: which firmwares can boot a disk, each with what was seen (undefined: it cannot). BIOS:
 * boot code in the first sector, and on GPT GRUB's core in a BIOS boot partition. UEFI: the
 * ESP's removable loader, an x86-64 PE file (a fresh VM's firmware has no boot entries).
 */
export function firmwareSupport(boot: BootFacts): { bios?: string; uefi?: string } {
  let bios: string | undefined;
  if (boot.mbrCode !== 'none') {
    const code = boot.mbrCode === 'grub' ? 'GRUB\'s boot code in the first sector' : 'boot code in the first sector';
    if (boot.table === 'msdos') bios = code;
    else if (boot.table === 'gpt' && boot.biosBoot?.core) bios = `${code}, its core in BIOS boot partition ${boot.biosBoot.partnum}`;
  }
  let uefi: string | undefined;
  const esp = boot.esp;
  if (esp?.readable && esp.fsType === 'vfat') {
    const entry = Object.entries(esp.loaders).find(([p]) => p.toUpperCase() === removableLoader.toUpperCase());
    if (entry && entry[1].pe && entry[1].x64) {
      const folder = entry[0].slice(0, entry[0].lastIndexOf('/') + 1);
      const shim = Object.keys(esp.loaders).some((p) => p.toUpperCase() === `${folder}GRUBX64.EFI`.toUpperCase());
      uefi = `${entry[0]} on ESP partition ${esp.partnum}${entry[1].signed ? ', signed' : ', unsigned'}${shim ? ', with grubx64.efi beside it (shim)' : ''}`;
    }
  }
  return { ...(bios ? { bios } : {}), ...(uefi ? { uefi } : {}) };
}

const pass = (evidence: string): RuleResult => ({ verdict: 'pass', evidence });
const fail = (evidence: string): RuleResult => ({ verdict: 'fail', evidence });
const warn = (evidence: string): RuleResult => ({ verdict: 'warn', evidence });
const skip = (evidence: string): RuleResult => ({ verdict: 'skip', evidence });

/** The first family whose os-release IDs the guest's ID or ID_LIKE names. */
export function familyOf(os: Record<string, string>, families: readonly GuestFamily[]): GuestFamily | undefined {
  const ids = [os.ID ?? '', ...(os.ID_LIKE ?? '').split(/\s+/)].map((s) => s.toLowerCase());
  return families.find((f) => ids.some((id) => f.osReleaseIds.includes(id)));
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

/**
 * Pure: would cloud-init run at boot and pick NoCloud, read the way cloud-init does it (its
 * disable switches, the kernel command line, ds-identify's policy, then datasource_list).
 */
export function datasourceVerdict(f: GuestFacts): RuleResult {
  if (f.cloudInitDisabledBy?.length) return fail(`${f.cloudInitDisabledBy.join(', ')} exists: cloud-init does not run at all`);
  // What the boot loader really passes: its generated files (grub.cfg, BLS entries, grubenv, /etc/kernel/cmdline);
  // GRUB's defaults in /etc/default/grub only when none was generated (they may never have been applied).
  const all = f.kernelCmdlines ?? [];
  const generated = all.filter((c) => !c.path.startsWith('/etc/default/grub'));
  const words = (generated.length ? generated : all).flatMap((c) => c.cmdline.split(/\s+/).filter(Boolean).map((w) => ({ w, from: c.path })));
  const off = words.find((x) => x.w === 'cloud-init=disabled');
  if (off) return fail(`cloud-init=disabled on the kernel command line (${off.from}): cloud-init does not run`);
  const policy = f.dsIdentify ? /^\s*policy:\s*(\S+)/m.exec(f.dsIdentify.text)?.[1] : undefined;
  if (policy && /^disabled\b/.test(policy)) return fail(`ds-identify policy ${policy} (${f.dsIdentify!.path}): cloud-init does not run`);
  const forced = words.find((x) => /^ds=nocloud(-net)?(;|$)/i.test(x.w));
  const policyNote = policy ? `; ds-identify policy ${policy} (${f.dsIdentify!.path})` : '';
  if (forced) return pass(`${forced.w.split(';')[0]} on the kernel command line (${forced.from})${policyNote}`);
  const { list, from, broken } = effectiveDatasourceList(f.cloudConfigs);
  const note = `${broken.length ? ` (unreadable: ${broken.join(', ')})` : ''}${policyNote}`;
  if (!list) return pass(`no datasource_list set: cloud-init's built-in list has NoCloud, and ds-identify finds the seed by its cidata label${note}`);
  const shown = `[${list.join(', ')}] from ${from}${note}`;
  return list.includes('NoCloud') ? pass(shown) : fail(`NoCloud missing: ${shown}`);
}

/**
 * Package names of the AMD GPU runtime. Not LLVM itself: it comes with ROCm (libamd-comgr) but a
 * profile may want it for its own sake (clang, mesa, numba).
 */
export const rocmPackage = /^(libamdhip|libhsa-runtime|libhsakmt|libamd-comgr|librocm|rocm-|hip-)/;

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
    passes: '/etc/os-release (else /usr/lib/os-release) has ID or ID_LIKE debian or ubuntu, or rhel, fedora, centos, rocky or almalinux',
    references: ['https://www.freedesktop.org/software/systemd/man/latest/os-release.html'],
    acceptable: [
      { state: 'a derivative known by ID_LIKE only', apply: (f) => { f.osRelease = { ID: 'mydistro', ID_LIKE: 'ubuntu debian', VERSION_ID: '1' }; } },
      { state: 'Rocky Linux (RedHat family)', apply: (f) => { f.osRelease = { ID: 'rocky', ID_LIKE: 'rhel centos fedora', VERSION_ID: '9.3' }; } },
    ],
    check: (f, o) => {
      const family = familyOf(f.osRelease, o.families)?.family;
      const name = f.osRelease.PRETTY_NAME ?? f.osRelease.ID ?? 'no /etc/os-release';
      return family ? pass(`${name} (${family} family, version ${f.osRelease.VERSION_ID ?? '?'})`) : fail(`not a ${o.families.map((g) => g.family).join(' or ') || 'known'} guest: ${name}`);
    },
  },
  {
    id: 'cloud-init.installed',
    title: 'cloud-init installed',
    severity: 'error',
    why: 'the batch system configures each VM through a NoCloud seed',
    passes: 'the image\'s package database (dpkg\'s status file, else the rpm database) lists cloud-init as installed',
    acceptable: [{ state: 'cloud-init from the rpm database', apply: (f) => { f.packageSource = 'rpm'; } }],
    check: (f) => {
      const version = f.packages.get('cloud-init');
      if (version) return pass(`cloud-init ${version} (${f.packageSource} database)`);
      const unread = f.unread?.length ? ' (verify did not read everything: see verify.complete)' : '';
      return fail(`${f.packageSource === 'none' ? 'no package database found' : `cloud-init is not in the ${f.packageSource} database`}${unread}`);
    },
  },
  {
    id: 'cloud-init.nocloud',
    title: 'NoCloud datasource enabled',
    severity: 'error',
    why: 'the cluster boots every VM with a NoCloud seed (cloud-localds)',
    passes: 'cloud-init runs (no /etc/cloud/cloud-init.disabled, no cloud-init=disabled on the kernel command line as the boot loader\'s generated files give it, else GRUB\'s defaults; ds-identify\'s policy not `disabled`) and would pick NoCloud: `ds=nocloud` on the kernel command line, or a datasource_list (cloud.cfg, then cloud.cfg.d/*.cfg in order, the last that sets it wins) that names NoCloud, or none at all (cloud-init\'s built-in list has NoCloud and ds-identify finds the seed by its `cidata` label)',
    references: ['https://cloudinit.readthedocs.io/en/latest/reference/datasources/nocloud.html', 'https://cloudinit.readthedocs.io/en/latest/reference/base_config_reference.html', 'https://cloudinit.readthedocs.io/en/latest/howto/disable_cloud_init.html'],
    acceptable: [
      { state: 'datasource_list [ NoCloud, None ] in cloud.cfg.d', apply: () => undefined },
      { state: 'no datasource_list anywhere', apply: (f) => { f.cloudConfigs = f.cloudConfigs.map((c) => ({ ...c, text: c.text.replace(/^datasource_list:.*$/m, '') })); } },
      { state: 'a later file names NoCloud after an earlier one did not', apply: (f) => { f.cloudConfigs = [{ path: '/etc/cloud/cloud.cfg.d/10_ec2.cfg', text: 'datasource_list: [ Ec2 ]\n' }, ...f.cloudConfigs]; } },
      { state: 'ds=nocloud on the kernel command line, whatever the lists say', apply: (f) => { f.cloudConfigs = [...f.cloudConfigs, { path: '/etc/cloud/cloud.cfg.d/99_x.cfg', text: 'datasource_list: [ Ec2 ]\n' }]; f.kernelCmdlines = [{ path: '/boot/grub/grub.cfg', cmdline: 'root=/dev/vda1 ro ds=nocloud;s=/var/seed/' }]; } },
      { state: 'ds-identify policy search,found=all,maybe=all,notfound=disabled (the default)', apply: (f) => { f.dsIdentify = { path: '/etc/cloud/ds-identify.cfg', text: 'policy: search,found=all,maybe=all,notfound=disabled\n' }; } },
    ],
    check: (f) => datasourceVerdict(f),
  },
  ...layoutRules.map((r): Rule => ({ id: r.id, title: r.title, severity: 'error', why: r.why, passes: r.passes, check: r.verify })),
  {
    id: 'vrdma.packages',
    title: 'RDMA userspace installed',
    severity: 'error',
    why: 'verbs applications need rdma-core and the verbs providers',
    passes: 'with vRDMA asked for (profile or --require vrdma): rdma-core and the verbs providers (ibverbs-providers on Debian, libibverbs on RedHat) are installed; skipped otherwise',
    references: ['https://github.com/linux-rdma/rdma-core'],
    check: onlyWithVrdma((f, o) => {
      // A guest of no known family (os.family fails) is held to the first family's list.
      const wanted = (familyOf(f.osRelease, o.families) ?? o.families[0])?.verbsPackages ?? [];
      if (wanted.length === 0) return fail('no family to name the verbs packages');
      const missing = wanted.filter((p) => !f.packages.has(p));
      return missing.length ? fail(`missing: ${missing.join(', ')}`) : pass(wanted.map((p) => `${p} ${f.packages.get(p)}`).join(', '));
    }),
  },
  {
    id: 'vrdma.kernel',
    title: 'every kernel has rdma_rxe',
    severity: 'error',
    why: 'soft-RoCE needs the rdma_rxe module (Debian\'s cloud kernel has none)',
    passes: 'with vRDMA asked for: every kernel in /boot has rdma_rxe under /lib/modules/<version>/kernel/drivers/infiniband/sw/rxe/ (compressed or not)',
    acceptable: [{ state: 'a zstd-compressed module', apply: (f) => { for (const k of f.kernels) f.rxeModules[k] = [`/lib/modules/${k}/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko.zst`]; } }],
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
    passes: 'with vRDMA asked for: a modules-load.d file (or /etc/modules) loads rdma_rxe and a guestforge-vrdma unit adds the link',
    check: onlyWithVrdma((f, o) => {
      const load = f.modulesLoad.find((m) => /^\s*rdma_rxe\s*$/m.test(m.text));
      const unit = f.systemdUnits.find((u) => u.startsWith('guestforge-vrdma'));
      if (load && unit) return pass(`${load.path} loads rdma_rxe; ${unit} adds the link`);
      return fail([load ? '' : 'rdma_rxe not in modules-load.d', unit ? '' : 'no guestforge-vrdma unit'].filter(Boolean).join('; '));
    }),
  },
  {
    id: 'size.no-rocm',
    title: 'no AMD GPU runtime',
    severity: 'error',
    why: 'ROCm and the LLVM its libamd-comgr brings are ~230 MiB in every copy of the image on every node, for a GPU a batch VM does not have (trixie\'s UCX depends on them; the ucx-no-rocm trim stands in for them)',
    passes: 'with the ucx-no-rocm trim active (a bootstrapped Debian 13 profile that does not keep it) or --require no-rocm: no installed package is the ROCm runtime (names starting libamdhip, libhsa-runtime, libhsakmt, libamd-comgr, librocm, rocm-, hip-; LLVM is not counted: a profile may want it for itself); skipped otherwise',
    check: (f, o) => {
      if (!o.requireNoRocm) return skip('the profile keeps ROCm, or has no ucx-no-rocm trim');
      const found = [...f.packages.keys()].filter((name) => rocmPackage.test(name)).sort();
      return found.length ? fail(`installed: ${found.join(', ')}`) : pass(f.packages.has('guestforge-no-rocm') ? `none; guestforge-no-rocm ${f.packages.get('guestforge-no-rocm')} stands in for them` : 'none');
    },
  },
  {
    id: 'hygiene.cloud-init-state',
    title: 'no cloud-init instance state',
    severity: 'error',
    why: 'every job VM gets the same instance-id: left-over state silently skips per-instance modules (runcmd, mounts)',
    passes: '/var/lib/cloud/instances is missing or empty (`cloud-init clean` leaves it so)',
    references: ['https://cloudinit.readthedocs.io/en/latest/reference/cli.html#clean'],
    check: (f) => (f.cloudInstances.length ? fail(`/var/lib/cloud/instances holds ${f.cloudInstances.join(', ')}`) : pass('none')),
  },
  {
    id: 'hygiene.machine-id',
    title: 'no machine-id of its own',
    severity: 'error',
    why: 'VMs cloned from one image must not share a machine-id (DHCP client ids, journald); an empty or missing /etc/machine-id, or `uninitialized` (systemd\'s first-boot marker, machine-id(5)), makes systemd generate one at first boot',
    passes: '/etc/machine-id is missing, empty or `uninitialized`; /var/lib/dbus/machine-id is missing, a link, empty or `uninitialized`',
    references: ['https://www.freedesktop.org/software/systemd/man/latest/machine-id.html'],
    acceptable: [
      { state: '/etc/machine-id empty', apply: (f) => { f.machineId = { bytes: 0, head: '' }; } },
      { state: '/etc/machine-id missing', apply: (f) => { delete f.machineId; } },
      { state: '/etc/machine-id `uninitialized` (systemd\'s first-boot marker)', apply: (f) => { f.machineId = { bytes: 14, head: 'uninitialized\n' }; } },
      { state: '/var/lib/dbus/machine-id a file that is empty', apply: (f) => { f.dbusMachineId = { bytes: 0, head: '' }; } },
    ],
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
    passes: 'no /etc/ssh/ssh_host_* files: cloud-init (ssh module) or the distribution\'s first boot makes them',
    check: (f) => (f.sshHostKeys.length ? fail(f.sshHostKeys.join(', ')) : pass('none')),
  },
  {
    id: 'hygiene.root-password',
    title: 'no usable password for any uid-0 account',
    severity: 'error',
    why: 'a password baked into an image is shared by every VM; root by another name (uid 0) is still root',
    passes: 'every uid-0 account\'s password, read as pam_unix reads it (the passwd field unless it is x, then the first shadow line), is locked (starting with ! or *, as `passwd -l` and RedHat\'s `!!` leave it) or absent (x with no shadow line), and no account name is on two lines of passwd or shadow; warn when no uid-0 account exists',
    references: ['https://man7.org/linux/man-pages/man5/shadow.5.html', 'https://man7.org/linux/man-pages/man8/pam_unix.8.html'],
    acceptable: [
      { state: 'root locked with !!', apply: (f) => { for (const u of f.passwd.filter((x) => x.uid === 0)) f.passwords[u.name] = 'locked'; } },
      { state: 'root with no shadow entry', apply: (f) => { for (const u of f.passwd.filter((x) => x.uid === 0)) delete f.passwords[u.name]; } },
    ],
    check: (f) => {
      const zeros = f.passwd.filter((u) => u.uid === 0).map((u) => u.name);
      if (zeros.length === 0) return warn('no uid-0 account in /etc/passwd');
      const said = zeros.map((n) => `${n}: ${f.passwords[n] ?? 'no shadow entry'}`);
      const twice = Object.entries(f.passwords).filter(([, s]) => s === 'duplicate').map(([n]) => n);
      if (twice.length) return fail(`account name(s) on two lines of passwd or shadow, which readers resolve differently: ${twice.join(', ')}`);
      const bad = zeros.filter((n) => f.passwords[n] !== undefined && f.passwords[n] !== 'locked');
      return bad.length ? fail(`uid-0 account(s) with a password: ${said.join(', ')}`) : pass(said.join(', '));
    },
  },
  {
    id: 'hygiene.ssh-passwords',
    title: 'sshd takes no passwords when accounts have them',
    severity: 'error',
    why: 'every VM of the image is reachable with the same password; the batch system logs in with keys',
    passes: 'PermitEmptyPasswords is not yes, and either no account has a usable password or sshd takes none (PasswordAuthentication no, and no keyboard-interactive through PAM); sshd\'s rules: first value wins, Include read in place, Match blocks not global',
    references: ['https://man.openbsd.org/sshd_config'],
    acceptable: [
      { state: 'an account with a password, sshd taking none', apply: (f) => { f.passwords = { ...f.passwords, hpc: 'usable' }; f.sshdConfigs = [{ path: '/etc/ssh/sshd_config', text: 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\n' }]; } },
      { state: 'sshd defaults, every account locked', apply: (f) => { f.sshdConfigs = [{ path: '/etc/ssh/sshd_config', text: '' }]; for (const n of Object.keys(f.passwords)) f.passwords[n] = 'locked'; } },
    ],
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
  {
    id: 'boot.firmware',
    title: 'boots under the firmware it claims',
    severity: 'error',
    why: 'a cluster boots each job\'s VM with its own firmware (SeaBIOS on i440fx, OVMF on q35 or a cloud\'s UEFI) and a fresh variable store: an image that claims a firmware must carry what that firmware starts, or every job fails at the first instruction',
    passes: 'BIOS: boot code in the first sector (GRUB\'s or another loader\'s), and on a GPT disk a BIOS boot partition holding GRUB\'s core; UEFI: an EFI system partition (GPT type C12A7328-…, or MBR type 0xEF) holding a FAT file system whose removable loader EFI/BOOT/BOOTX64.EFI is an x86-64 PE file, which a firmware without boot entries starts. The image must boot under every firmware the profile claims (disk.firmware; `verify --firmware`); without a claim the rule states what it found, and warns when neither firmware can boot it',
    references: ['https://uefi.org/specs/UEFI/2.10/03_Boot_Manager.html#boot-manager-policy-protocol', 'https://www.gnu.org/software/grub/manual/grub/html_node/BIOS-installation.html'],
    acceptable: [
      { state: 'an MBR disk: GRUB in the first sector, the ESP of type 0xEF', apply: (f) => { f.boot = { table: 'msdos', mbrCode: 'grub', ...(f.boot?.esp ? { esp: { ...f.boot.esp, partnum: 2 } } : {}) }; } },
      { state: 'another loader\'s boot code; the ESP\'s names in lower case (FAT ignores case)', apply: (f) => { f.boot = { ...f.boot!, mbrCode: 'other', esp: { ...f.boot!.esp!, loaders: Object.fromEntries(Object.entries(f.boot!.esp!.loaders).map(([p, v]) => [p.toLowerCase(), v])) } }; } },
    ],
    check: (f, o) => {
      if (!f.boot) return fail('the disk\'s boot facts were not read');
      const found = firmwareSupport(f.boot);
      const stated = `${found.bios ? `BIOS (${found.bios})` : 'not BIOS'}; ${found.uefi ? `UEFI (${found.uefi})` : 'not UEFI'}`;
      if (!o.firmware) return found.bios || found.uefi ? pass(`boots under ${stated}`) : warn(`no firmware can boot it: ${stated}`);
      const missing = claimedFirmwares(o.firmware).filter((w) => !found[w]);
      return missing.length ? fail(`claims ${o.firmware}, but ${missing.map((m) => m.toUpperCase()).join(' and ')} cannot boot it: ${stated}`) : pass(`claims ${o.firmware}: ${stated}`);
    },
  },
  {
    id: 'boot.secure-boot',
    title: 'Secure Boot chain signed',
    severity: 'error',
    why: 'a site that turns Secure Boot on runs only what its keys signed: every link from the firmware to the kernel must carry a signature, or the job VM stops at the first unsigned one',
    passes: 'only when asked (disk.secureBoot, `verify --require secure-boot`): the removable loader EFI/BOOT/BOOTX64.EFI is signed (Debian\'s shim, signed by Microsoft\'s UEFI CA), so is every grubx64.efi on the ESP that shim may start (beside it, or in the vendor\'s folder), and so is every /boot/vmlinuz-* (at most 16 are read; more fail verify.complete). A signature is seen in the PE header\'s certificate table; whose it is, the Secure Boot smoke boot proves',
    references: ['https://wiki.debian.org/SecureBoot'],
    acceptable: [{ state: 'not asked for', apply: () => undefined }],
    check: (f, o) => {
      if (!o.secureBoot) return skip('Secure Boot not required');
      const loaders = Object.entries(f.boot?.esp?.loaders ?? {});
      const first = loaders.find(([p]) => p.toUpperCase() === removableLoader.toUpperCase());
      // What shim starts: grubx64.efi beside it (Debian), or in the vendor's folder that its fallback finds (RedHat): every one.
      const second = loaders.filter(([p]) => /(^|\/)grubx64\.efi$/i.test(p));
      const problems = [
        ...(first ? (first[1].signed ? [] : [`${first[0]} is not signed`]) : [`no ${removableLoader}`]),
        ...(second.length ? second.filter(([, pe]) => !pe.signed).map(([p]) => `${p} is not signed`) : ['no grubx64.efi on the ESP']),
        ...(f.kernels.length ? f.kernels.filter((v) => !f.kernelPe?.[v]?.signed).map((v) => `vmlinuz-${v} is ${f.kernelPe?.[v] ? 'not signed' : 'not read'}`) : ['no kernel in /boot']),
      ];
      return problems.length ? fail(problems.join('; ')) : pass(`${first![0]}, ${second.map(([p]) => p).join(', ')} and ${f.kernels.map((v) => `vmlinuz-${v}`).join(', ')} are signed`);
    },
  },
  {
    id: 'verify.complete',
    title: 'everything judged was read',
    severity: 'error',
    why: 'verify reads a hostile image within bounds (a 2 GiB rpm database, 3,000 config files or a loop of links must not fill the host, take hours or stop verify), and a verdict on what it did not read would pass it unseen',
    passes: `every file and folder the rules look at was read: no pattern (cloud.cfg.d/*.cfg, sshd_config.d/*.conf, /boot/vmlinuz-*, …) matches more than ${readLimits.globbedFiles} files, no configuration file is over ${readLimits.fileBytes / (1024 * 1024)} MiB (dpkg's status ${readLimits.statusBytes / (1024 * 1024)} MiB), the texts together are within ${readLimits.totalBytes / (1024 * 1024)} MiB, the rpm database within ${readLimits.rpmDbBytes / (1024 * 1024)} MiB and readable by rpm, and no path runs through a loop of symbolic links`,
    check: (f) => {
      const unread = f.unread ?? [];
      if (unread.length === 0) return pass('every file the rules judge was read');
      const shown = unread.slice(0, 10).map((u) => `${u.path} (${u.why})`).join('; ');
      return fail(`not read: ${shown}${unread.length > 10 ? `; and ${unread.length - 10} more` : ''}`);
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
