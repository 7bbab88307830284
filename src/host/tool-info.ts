/** A host program: the Debian package that ships it and how to ask its version (leaf type). */
export interface ToolInfo {
  readonly apt: string;
  readonly versionArgs: readonly string[];
  /** Which commands need it, for doctor's report. */
  readonly usedBy: string;
  readonly optional?: boolean;
}
