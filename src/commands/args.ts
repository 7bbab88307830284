import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.ts';
import type { LoadOptions } from '../loader/profile.ts';

/** node:util parseArgs, with its errors turned into usage errors (exit 2). */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  args: string[],
  options: T,
) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${command}: ${(error as Error).message}`, { hint: `see: guestforge ${command} --help` });
  }
}

/** `--allow-host-path DIR`, repeatable, for every command that loads a profile: its host files may also be under DIR. */
export const allowHostPathOption = { 'allow-host-path': { type: 'string', multiple: true } } as const;

export function loadOptionsOf(values: { 'allow-host-path'?: unknown }): Required<LoadOptions> {
  const dirs = values['allow-host-path'];
  return { allowHostPaths: Array.isArray(dirs) ? dirs.map(String) : [] };
}
