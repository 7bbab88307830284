import { UsageError } from '../errors.ts';
import { formatDiagnostic } from '../profile/diagnostic.ts';
import { loadProfile, type LoadedProfile, type LoadOptions } from './profile.ts';

/** Load a profile or stop with every problem listed (exit 2). */
export async function loadProfileOrThrow(file: string, options: LoadOptions = {}): Promise<LoadedProfile> {
  const result = await loadProfile(file, options);
  if (result.ok) return result.value;
  throw new UsageError(`invalid profile ${file}`, { hint: result.diagnostics.map(formatDiagnostic).join('\n') });
}
