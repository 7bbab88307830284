import { join } from 'node:path';
import { profileUserData } from '../linux-seed.ts';
import { parseDuration } from '../../profile/units.ts';
import { smokeOsv } from './smoke.ts';
import type { OsOf, Profile } from '../../profile/schema.ts';
import type { Problem } from '../../model/problem.ts';
import type { OsDriver } from '../../stages/driver.ts';
import { baseStage, finalizeStage, smokeStage } from '../../stages/index.ts';
import { composeStage, packageStage } from './stages.ts';
import { recognizeOsv } from './recognize.ts';

/** The OSv part of a profile; the OSv stages call this, so a wrong family fails loudly. */
export function osvOs(profile: Profile): OsOf<'osv'> {
  if (profile.os.family !== 'osv') throw new Error(`not an OSv profile: ${profile.os.family}`);
  return profile.os;
}

function checkProfile(profile: Profile): Problem[] {
  const problems: Problem[] = [];
  const os = osvOs(profile);
  if (profile.vrdma.enabled) problems.push({ path: ['vrdma', 'enabled'], message: 'vRDMA is not available for OSv guests' });
  for (const field of ['packages', 'users', 'commands'] as const) {
    if (profile[field].length > 0) {
      problems.push({ path: [field], message: `OSv guests have no ${field}: an OSv image holds one app`, hint: "put the app's files under apps" });
    }
  }
  for (const [index, app] of profile.apps.entries()) {
    if (app.dest === '/Capstanfile' || app.dest === '/meta' || app.dest.startsWith('/meta/')) {
      problems.push({ path: ['apps', index, 'dest'], message: `${app.dest} is the Capstan package's own (meta/, Capstanfile)`, hint: 'put the app at another path, e.g. /app' });
    }
  }
  if (!os.cmdline && !os.bootcmd) problems.push({ path: ['os'], message: 'an OSv guest needs os.cmdline or os.bootcmd', hint: 'e.g. cmdline: /hello' });
  return problems;
}

/** OSv has no package manager and no guestfish-readable filesystem: it is packaged, then composed. */
export const osv: OsDriver = {
  family: 'osv',
  title: 'OSv unikernel',
  plan: () => [baseStage, packageStage, composeStage, finalizeStage, smokeStage],
  recognize: recognizeOsv,
  vrdmaPackages: [],
  buildConfig: () => ({}),
  offlineFixups: async () => [],
  datasourceFile: '',
  // An OSv image holds one app wherever its command line says; no /opt mount applies.
  clusterLayout: false,
  keepsBaseDisk: false,
  smoke: (ctx, step, image) => smokeOsv(image, {
    ...(ctx.profile.smoke.expect !== undefined ? { expect: ctx.profile.smoke.expect } : {}),
    powerOff: ctx.profile.smoke.powerOff, accel: ctx.accel, workDir: join(ctx.workDir, 'smoke'), logDir: ctx.logDir,
    timeoutMs: parseDuration(ctx.profile.build.smokeTimeout), log: ctx.log, signal: ctx.signal, step,
  }),
  describeSmoke: (profile) => `boot ${profile.name}.${profile.disk.format}; check the OSv banner${profile.smoke.expect ? `, a console line matching /${profile.smoke.expect}/` : ''} and that it ${profile.smoke.powerOff ? 'powers off by itself' : 'keeps running'}; timeout ${profile.build.smokeTimeout}`,
  usesBuilder: true,
  checkProfile,
  // Composed from the app files, with no build VM.
  buildSeed: async () => undefined,
  // OSv's cloud-init reads user-data only, from a second disk.
  clusterSeed: async (profile) => ({ userData: await profileUserData(profile) }),
};
