/** The stages a build can have, in pipeline order (leaf: no project imports). */

/** Stages known to the pipeline; a family picks and orders the ones it runs. */
export const stageNames = ['base', 'provision', 'seal', 'inject', 'verify', 'finalize', 'smoke', 'package', 'compose'] as const;

export type StageName = (typeof stageNames)[number];
