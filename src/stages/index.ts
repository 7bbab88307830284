/** The stage registry. A stage a family lists but nobody has written yet is reported, not skipped. */
import type { StageName } from '../model/stage.ts';
import { baseStage } from './base.ts';
import { finalizeStage } from './finalize.ts';
import { injectStage } from './inject.ts';
import { sealStage } from './seal.ts';
import { provisionStage } from './provision.ts';
import { smokeStage } from './smoke.ts';
import type { Stage } from './types.ts';
import { verifyStage } from './verify.ts';
import { composeStage, packageStage } from '../os/osv/stages.ts';

export const stages: Partial<Record<StageName, Stage>> = {
  base: baseStage,
  provision: provisionStage,
  seal: sealStage,
  inject: injectStage,
  verify: verifyStage,
  finalize: finalizeStage,
  smoke: smokeStage,
  package: packageStage,
  compose: composeStage,
};
