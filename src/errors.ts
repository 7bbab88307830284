/** Exit codes, documented in the README. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  sigint: 130,
  sigterm: 143,
} as const;

/**
 * An error the user can act on: printed as a message plus hint, never with a
 * stack. Anything that is not a UserError is a bug in guestforge.
 */
export class UserError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(message: string, options: { hint?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'UserError';
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.failure;
  }
}

/** Bad command-line usage or a bad profile: exit 2. */
export class UsageError extends UserError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.usage });
    this.name = 'UsageError';
  }
}

/** The build was interrupted by a signal. */
export class InterruptedError extends UserError {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`, {
      exitCode: signal === 'SIGTERM' ? ExitCode.sigterm : ExitCode.sigint,
    });
    this.name = 'InterruptedError';
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
