/**
 * The cluster's guest layout, one record per rule: what `validate` refuses
 * in a profile, what the build VM checks before it powers off, what
 * `verify` judges offline, and what the smoke and rehearsal VMs check from
 * inside are all generated from these records. This is the only place that
 * says where /opt, the workspace, the homes and the apps folder stand.
 */
import { posix } from 'node:path';
import { shellWord as sq } from '../util/quote.ts';
import type { GuestFacts } from '../model/facts.ts';
import { isUnder } from './paths.ts';
import type { RuleResult, VerifyOptions } from '../model/verify.ts';

/** The cluster mounts its own software folder here at job start. */
export const clusterOpt = '/opt';

/** What an empty ext4 (the apps volume) has at its top: e2fsck's, not content anyone put there. */
export const volumeOwnFolder = 'lost+found';

export interface Layout {
  workspace: string;
  workspaceMode: string;
  optVm: string;
  home: string;
  /** The label of the apps volume mounted at optVm, when the image has one (the in-guest check asks for it). */
  appsVolumeLabel?: string;
}

export interface LayoutProblem {
  /** Field path in the profile (`layout.optVm`, `apps.2.dest`). */
  path: (string | number)[];
  message: string;
  hint?: string;
}

export interface LayoutRule {
  id: string;
  title: string;
  why: string;
  /** What counts as a pass, in words (verify's records). */
  passes: string;
  /** Profile-time: problems with the layout and the apps' destinations. */
  validate?(layout: Layout, appDests: string[]): LayoutProblem[];
  /** Build VM, last runcmd: a shell line that exits non-zero with a message when the rule fails. */
  provisionCheck?(layout: Layout): string;
  /** Offline, over the facts read from the image. */
  verify(facts: GuestFacts, options: VerifyOptions): RuleResult;
  /** In the booted guest: a check id and a shell body (prints its evidence, exit 0 = pass). */
  inGuest?(layout: Layout): { id: string; shell: string };
}

const pass = (evidence: string): RuleResult => ({ verdict: 'pass', evidence });
const fail = (evidence: string): RuleResult => ({ verdict: 'fail', evidence });



function octal(m: number | undefined): string {
  return m === undefined ? '?' : (m & 0o7777).toString(8).padStart(4, '0');
}

function underOpt(field: keyof Layout, value: string): LayoutProblem[] {
  return isUnder(value, clusterOpt)
    ? [{ path: ['layout', field], message: `must not be under ${clusterOpt}: the cluster mounts its own ${clusterOpt} over it`, hint: field === 'optVm' ? 'use /opt-vm' : undefined }]
    : [];
}

export const layoutRules: LayoutRule[] = [
  {
    id: 'layout.workspace',
    title: 'workspace folder for job data',
    why: 'jobs write intermediate data to the workspace',
    passes: 'the workspace folder (`layout.workspace`, default /workspace) exists, is a folder, and has exactly `layout.workspaceMode` (default 1777: every job owner writes there, the sticky bit keeps them from each other\'s files)',
    validate: (l) => underOpt('workspace', l.workspace),
    verify: (f, o) => {
      const p = f.paths[o.workspace];
      if (!p?.exists) return fail(`${o.workspace} does not exist`);
      if (!p.isDir) return fail(`${o.workspace} is not a directory`);
      const want = parseInt(o.workspaceMode, 8);
      const have = (p.mode ?? 0) & 0o7777;
      return have === want ? pass(`${o.workspace} mode ${octal(p.mode)}`) : fail(`${o.workspace} mode ${octal(p.mode)}, want ${octal(want)}`);
    },
    inGuest: (l) => ({
      id: 'layout.workspace-writable',
      shell: `runuser -u nobody -- sh -c 'f=$(mktemp -p "$1") && rm -f "$f"' sh ${sq(l.workspace)} && echo ${sq(`nobody can write ${l.workspace}`)}`,
    }),
  },
  {
    id: 'layout.home',
    title: 'homes under /home',
    why: "the cluster mounts users' homes over NFS at /home",
    passes: 'the homes folder exists and every regular account (uid 1000-59999) has its home under it; system accounts may live elsewhere',
    verify: (f, o) => {
      const home = f.paths[o.home];
      if (!home?.isDir) return fail(`${o.home} is missing`);
      const users = f.passwd.filter((u) => u.uid >= 1000 && u.uid < 60000);
      const outside = users.filter((u) => !u.home.startsWith(`${o.home}/`));
      if (outside.length) return fail(`homes outside ${o.home}: ${outside.map((u) => `${u.name}:${u.home}`).join(', ')}`);
      return pass(`${o.home} present; ${users.length} regular user(s): ${users.map((u) => u.name).join(', ') || 'none'}`);
    },
  },
  {
    id: 'layout.opt-empty',
    title: `${clusterOpt} empty`,
    why: `the cluster mounts its own ${clusterOpt}, hiding anything installed there`,
    passes: `${clusterOpt} is missing or empty in the image`,
    validate: (l, dests) =>
      dests.flatMap((dest, index) =>
        isUnder(dest, clusterOpt)
          ? [{ path: ['apps', index, 'dest'], message: `"${dest}" is under ${clusterOpt}, which the cluster mounts over at boot`, hint: `install apps under ${l.optVm} (e.g. ${posix.join(l.optVm, posix.basename(dest))})` }]
          : []),
    provisionCheck: (l) => `[ -z "$(ls -A ${clusterOpt} 2>/dev/null)" ] || { echo "${clusterOpt} is not empty after provisioning: $(ls -A ${clusterOpt} | tr '\\n' ' ')" ${sq(`(install to ${l.optVm})`)}; exit 1; }`,
    verify: (f, o) => {
      const opt = f.paths[clusterOpt];
      if (!opt?.exists) return pass(`${clusterOpt} absent`);
      const entries = opt.entries ?? [];
      return entries.length === 0 ? pass(`${clusterOpt} is empty`) : fail(`${clusterOpt} holds ${entries.join(', ')}: install apps to ${o.optVm}`);
    },
    inGuest: (l) => ({
      id: 'layout.opt-empty',
      // A mount over /opt (the cluster's own) is not the image's content.
      shell: `if mountpoint -q ${clusterOpt}; then echo "${clusterOpt} is a mount point (the cluster's)"; elif [ -z "$(ls -A ${clusterOpt} 2>/dev/null)" ]; then echo "${clusterOpt} is empty"; else echo "${clusterOpt} holds: $(ls -A ${clusterOpt} | head -5 | tr '\\n' ' ')" ${sq(`(apps belong in ${l.optVm})`)}; false; fi`,
    }),
  },
  {
    id: 'layout.opt-vm',
    title: 'apps folder present',
    why: `apps live in the apps folder (default /opt-vm) because ${clusterOpt} belongs to the cluster`,
    passes: 'the apps folder (`layout.optVm`, default /opt-vm) exists as a folder; empty is fine',
    validate: (l) => underOpt('optVm', l.optVm),
    verify: (f, o) => {
      const p = f.paths[o.optVm];
      return p?.isDir ? pass(`${o.optVm}: ${(p.entries ?? []).filter((e) => e !== volumeOwnFolder).join(', ') || 'empty'}`) : fail(`${o.optVm} does not exist`);
    },
    inGuest: (l) => ({
      id: 'layout.opt-vm',
      shell: [
        `[ -d ${sq(l.optVm)} ]`,
        // The image's fstab mounts the apps volume there; nofail, so a missing one shows here, not as a failed boot.
        ...(l.appsVolumeLabel ? [`{ [ "$(findmnt -rn -o LABEL --mountpoint ${sq(l.optVm)})" = ${sq(l.appsVolumeLabel)} ] || { echo ${sq(`${l.optVm} is not the mounted apps volume (${l.appsVolumeLabel})`)}; false; }; }`] : []),
        `echo ${sq(`${l.optVm}:`)} "$(ls ${sq(l.optVm)} | grep -vx ${sq(volumeOwnFolder)} | tr '\\n' ' ')"${l.appsVolumeLabel ? ` ${sq(`(volume ${l.appsVolumeLabel})`)}` : ''}`,
      ].join(' && '),
    }),
  },
];

/** Profile-time problems of every rule; `appDests[i]` is '' for a destination already refused. */
export function layoutProblems(layout: Layout, appDests: string[]): LayoutProblem[] {
  return layoutRules.flatMap((r) => r.validate?.(layout, appDests) ?? []).filter((p) => !(p.path[0] === 'apps' && appDests[p.path[1] as number] === ''));
}

/** The paths the offline rules read, with whether their entries are listed. */
export function layoutPaths(layout: Pick<Layout, 'workspace' | 'home' | 'optVm'>): [string, boolean][] {
  return [[layout.workspace, false], [layout.home, true], [clusterOpt, true], [layout.optVm, true]];
}

/** The build VM's last layout step: make the folders, then every rule's provision check. */
export function provisionLayoutScript(layout: Layout): string {
  return [
    `mkdir -p ${sq(layout.workspace)} ${sq(layout.optVm)}`,
    `chmod ${sq(layout.workspaceMode)} ${sq(layout.workspace)}`,
    ...layoutRules.flatMap((r) => (r.provisionCheck ? [r.provisionCheck(layout)] : [])),
  ].join('\n');
}

/** Shell for the smoke and rehearsal VMs: `check ID FUNCTION` lines over generated functions. */
export function inGuestLayoutChecks(layout: Layout): string {
  return layoutRules
    .flatMap((r) => (r.inGuest ? [r.inGuest(layout)] : []))
    .map((c, i) => `gf_layout_${i}() { ${c.shell}; }\ncheck ${c.id} gf_layout_${i}`)
    .join('\n');
}

/** The ids of the in-guest layout checks, for `plan`. */
export function inGuestLayoutIds(layout: Layout): string[] {
  return layoutRules.flatMap((r) => (r.inGuest ? [r.inGuest(layout).id] : []));
}
