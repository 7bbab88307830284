/** A cluster description: read, validated by the schema, every problem located (file:line:col field). */
import { resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { formatDiagnostic } from '../profile/diagnostic.ts';
import { parseLocated } from '../profile/located.ts';
import { readSource, SourceError } from '../profile/source.ts';
import { projectRoot } from '../util/project.ts';
import { clusterSchema, type Cluster } from './schema.ts';

export const defaultClusterFile = resolve(projectRoot, 'clusters', 'vtorque.yaml');

export async function loadClusterOrThrow(file = defaultClusterFile): Promise<Cluster> {
  const absolute = resolve(file);
  let diagnostics;
  try {
    const source = await readSource(absolute);
    if (typeof source.data !== 'object' || source.data === null || Array.isArray(source.data)) {
      throw new SourceError([{ location: source.locations.find([])!, path: [], message: 'a cluster description must be a YAML mapping' }]);
    }
    const parsed = parseLocated(clusterSchema, source.data, source.locations);
    if (parsed.ok) return parsed.data;
    diagnostics = parsed.diagnostics;
  } catch (error) {
    if (!(error instanceof SourceError)) throw error;
    diagnostics = error.diagnostics;
  }
  throw new UsageError(`invalid cluster description ${file}`, { hint: diagnostics.map(formatDiagnostic).join('\n') });
}
