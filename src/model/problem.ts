/** A problem found in a profile, with the field path it concerns (leaf type). */
export interface Problem {
  path: (string | number)[];
  message: string;
  hint?: string;
}
