/**
 * The NoCloud user-data of the build and smoke VMs, generated from the
 * profile, the OS driver and the fragments under cloud-init/. The result line
 * that tells the host how provisioning went comes from cloud-init/report.sh,
 * run as power_state's condition, i.e. after cloud-init has finished.
 */
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import type { CloudConfig } from './yaml.ts';
import type { BuildOnlyFile } from './seed.ts';
import type { Profile } from '../profile/schema.ts';
import { mergeLayers } from '../profile/merge.ts';
import { Locations } from '../profile/source.ts';
import { readShipped } from '../util/project.ts';
import { parseCloudConfig } from './yaml.ts';
import { inGuestLayoutChecks, provisionLayoutScript, type Layout } from '../policy/layout.ts';
import { shellQuote, shellWord } from '../util/quote.ts';
import type { BootFirmware } from '../model/disk.ts';
import { activeTrims } from '../policy/boot.ts';
import { readChecks } from './checks.ts';
import { startedBootcmd } from '../vm/serial.ts';

export const guestDir = '/var/lib/guestforge';

/** Maps deep-merge, lists append, scalars override: the profile rule. */
export function mergeCloudConfig(...configs: CloudConfig[]): CloudConfig {
  return configs.reduce<CloudConfig>(
    (acc, next) => mergeLayers({ data: acc, locations: new Locations() }, { data: next, locations: new Locations() }).data as CloudConfig,
    {},
  );
}

export function metaData(profile: Pick<Profile, 'name'>, nonce: string): string {
  return `instance-id: guestforge-${profile.name}-${nonce}\nlocal-hostname: ${profile.name}\n`;
}

function userEntry(profile: Profile, user: Profile['users'][number]): CloudConfig {
  const entry: CloudConfig = {
    name: user.name,
    shell: user.shell,
    homedir: posix.join(profile.layout.home, user.name),
    lock_passwd: user.passwordHash === undefined,
  };
  if (user.uid !== undefined) entry.uid = user.uid;
  if (user.groups.length > 0) entry.groups = user.groups.join(', ');
  if (user.sudo) entry.sudo = 'ALL=(ALL) NOPASSWD:ALL';
  if (user.sshKeys.length > 0) entry.ssh_authorized_keys = user.sshKeys;
  if (user.passwordHash) entry.hashed_passwd = user.passwordHash;
  return entry;
}

function commandFile(index: number, command: string): CloudConfig {
  const label = `command ${index + 1}: ${command.split('\n')[0]}`;
  return {
    path: `${guestDir}/commands/${String(index + 1).padStart(3, '0')}.sh`,
    permissions: '0755',
    content: `# guestforge-label: ${label}\n${command}\n`,
  };
}

async function extraUserDataAsWritten(profile: Profile): Promise<CloudConfig> {
  const extra = profile.cloudInit.userData;
  if (extra === undefined) return {};
  if (typeof extra === 'string') return parseCloudConfig(await readFile(extra, 'utf8'));
  return extra;
}

function writeFilesOf(config: CloudConfig): Record<string, unknown>[] {
  const files = (config as { write_files?: unknown }).write_files;
  return Array.isArray(files) ? files.filter((f): f is Record<string, unknown> => typeof f === 'object' && f !== null) : [];
}

/** The extra user-data as cloud-init gets it: `secret: true` is ours (for redaction), not cloud-init's. */
async function extraUserData(profile: Profile): Promise<CloudConfig> {
  const config = await extraUserDataAsWritten(profile);
  const files = writeFilesOf(config);
  if (!files.some((f) => 'secret' in f)) return config;
  return { ...config, write_files: files.map(({ secret: _secret, ...rest }) => rest) };
}

/**
 * Paths of write_files entries shown as <redacted> in logs and plan: the extra user-data's
 * marked `secret: true`, and the family's build-only files (a mirror's credentials).
 */
export async function secretFilePaths(profile: Profile, buildOnly: readonly BuildOnlyFile[] = []): Promise<string[]> {
  const marked = writeFilesOf(await extraUserDataAsWritten(profile)).filter((f) => f.secret === true && typeof f.path === 'string').map((f) => f.path as string);
  return [...marked, ...buildOnly.map((f) => f.path)];
}

/** What a guest family adds to the build VM's user-data (os/linux-seed.ts asks the driver). */
export interface FamilyUserData {
  /** Where cloud-init's datasource list goes. */
  datasourceFile: string;
  /** Secrets the build VM needs for a while, written owner-only and removed by its last command. */
  buildOnly: readonly BuildOnlyFile[];
  /** cloud-config only this family needs (its own keys, then vRDMA's), merged before the profile's own user-data. */
  configs: readonly CloudConfig[];
}

/** Before the profile's commands: the layout's folders. */
export function layoutCommands(profile: Profile): string[][] {
  const { workspace, workspaceMode, optVm } = profile.layout;
  return [
    ['mkdir', '-p', workspace, optVm, guestDir],
    ['chmod', workspaceMode, workspace],
  ];
}

/** After the profile's commands: every layout rule's build-VM check; a failure fails the build with its message. */
export function layoutCheckCommand(profile: Profile): string[] {
  const script = provisionLayoutScript(profile.layout);
  return ['sh', '-c', `out=$( (\n${script}\n) 2>&1 ) || { mkdir -p /run/guestforge; echo "$out" | tail -n 3 > /run/guestforge/failed; }`];
}

/** The build VM's cloud-config. */
export async function composeBuildUserData(profile: Profile, family: FamilyUserData, nonce: string): Promise<CloudConfig> {
  const [staticPart, report, runCommands] = await Promise.all([
    readShipped('cloud-init', 'build.yaml').then(parseCloudConfig),
    readShipped('cloud-init', 'report.sh'),
    readShipped('cloud-init', 'run-commands.sh'),
  ]);
  const trims = activeTrims(profile);
  const { buildOnly } = family;
  // The other trims once the build VM's own first boot has run everything: its last runcmd
  // (not write_files' defer, which some RHEL-family cloud-init builds leave out).
  const late = [
    ...trims.filter((t) => !t.early).flatMap((t) => t.files ?? []).map((f) => ['sh', '-c', `mkdir -p ${shellWord(posix.dirname(f.path))} && printf '%s' ${shellWord(f.content)} > ${shellWord(f.path)}`]),
    ...trims.flatMap((t) => t.mask ?? []).map((unit) => ['systemctl', 'mask', '--quiet', unit]),
  ];
  const generated: CloudConfig = {
    bootcmd: [startedBootcmd(nonce)],
    write_files: [
      { path: family.datasourceFile, permissions: '0644', content: 'datasource_list: [ NoCloud, None ]\n' },
      { path: `${guestDir}/report.sh`, permissions: '0755', content: report },
      { path: `${guestDir}/run-commands.sh`, permissions: '0755', content: runCommands },
      ...profile.commands.map((command, index) => commandFile(index, command)),
      ...trims.filter((t) => t.early).flatMap((t) => t.files ?? []).map((f) => ({ ...f, permissions: '0644' })),
      ...buildOnly.map((f) => ({ path: f.path, owner: 'root:root', permissions: '0600', content: f.content })),
    ],
    runcmd: layoutCommands(profile),
    power_state: { mode: 'poweroff', delay: 'now', timeout: 120, condition: ['sh', `${guestDir}/report.sh`, nonce] },
  };
  if (profile.packages.length > 0) {
    generated.package_update = true;
    generated.packages = [...profile.packages];
  }
  generated.users = profile.users.map((user) => userEntry(profile, user));
  return mergeCloudConfig(
    staticPart,
    generated,
    ...family.configs,
    await extraUserData(profile),
    // Last: the profile's commands run once everything above is in place,
    // then the layout is checked (a command must not fill /opt either);
    // the build-only files go at the very end, when nothing needs them.
    { runcmd: [['sh', `${guestDir}/run-commands.sh`], layoutCheckCommand(profile), ...late, ...(buildOnly.length ? [['rm', '-f', '--', ...buildOnly.map((f) => f.path)]] : [])] },
  );
}

/** The smoke VM's cloud-config: boot as the cluster does, check from inside, report. */
export async function smokeUserData(profile: SmokeTarget, nonce: string): Promise<CloudConfig> {
  const [staticPart, report, checks] = await Promise.all([
    readShipped('cloud-init', 'smoke.yaml').then(parseCloudConfig),
    readShipped('cloud-init', 'report.sh'),
    readChecks('smoke-checks.sh'),
  ]);
  const grow = profile.grow;
  const vars = [
    `VRDMA='${profile.vrdma ? 1 : 0}'`,
    `FIRMWARE=${shellQuote([profile.firmware ?? ''])}`,
    `GROW_DISK_BYTES=${shellQuote([grow ? String(grow.diskBytes) : ''])}`,
    `GROW_KEEP=${shellQuote([(grow?.keep ?? []).map((k) => `${k.partnum}:${k.offset / 512}:${k.bytes / 512}`).join(' ')])}`,
    '',
  ].join('\n');
  return mergeCloudConfig(staticPart, {
    bootcmd: [startedBootcmd(nonce)],
    write_files: [
      { path: `${guestDir}/report.sh`, permissions: '0755', content: report },
      { path: `${guestDir}/smoke-checks.sh`, permissions: '0755', content: `${vars}${checks.replace('# @LAYOUT_CHECKS@', inGuestLayoutChecks(profile))}` },
    ],
    power_state: {
      mode: 'poweroff', delay: 'now', timeout: 120,
      condition: ['sh', `${guestDir}/report.sh`, nonce, `${guestDir}/smoke-checks.sh`],
    },
  });
}

/** What the smoke checks need to know; from a profile, or defaults for any image. */
export interface SmokeTarget extends Layout {
  vrdma: boolean;
  /** The firmware this boot runs under: the guest checks it booted through it (and Secure Boot is on). */
  firmware?: BootFirmware;
  /**
   * The disk was grown to `diskBytes` before the boot, as a cluster enlarges the copy it boots:
   * the guest checks that the root grew and that the partitions in `keep` did not move.
   */
  grow?: { diskBytes: number; keep: { partnum: number; offset: number; bytes: number }[] };
}

/** `appsVolume`: the family's apps volume for this profile (its driver's appsVolume), if it has one. */
export function smokeTargetOf(profile: Profile, appsVolume: { label: string } | undefined): SmokeTarget {
  return { ...profile.layout, vrdma: profile.vrdma.enabled, ...(appsVolume ? { appsVolumeLabel: appsVolume.label } : {}) };
}
