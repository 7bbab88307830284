/** The generic stages, as the Linux families' drivers plan them (OSv plans its own with some of them). */
import { baseStage } from './base.ts';
import { finalizeStage } from './finalize.ts';
import { injectStage } from './inject.ts';
import { sealStage } from './seal.ts';
import { provisionStage } from './provision.ts';
import { smokeStage } from './smoke.ts';
import type { Stage } from './types.ts';
import { verifyStage } from './verify.ts';

export { baseStage, finalizeStage, injectStage, provisionStage, sealStage, smokeStage, verifyStage };

/** Make or import the base, provision it in a build VM, seal, add the apps, verify, write the outputs, smoke-boot. */
export const linuxPlan: readonly Stage[] = [baseStage, provisionStage, sealStage, injectStage, verifyStage, finalizeStage, smokeStage];
