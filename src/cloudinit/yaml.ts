import { Document, parse } from 'yaml';
import type { CloudConfig } from '../os/types.ts';

/**
 * cloud-init reads with PyYAML, i.e. YAML 1.1 (yes/no are booleans), and a
 * folded line would break an SSH key: write 1.1 with no line width.
 */
export function renderCloudConfig(config: CloudConfig): string {
  const doc = new Document(config, { version: '1.1' });
  return `#cloud-config\n${doc.toString({ lineWidth: 0 })}`;
}

export function renderYaml11(value: unknown): string {
  return new Document(value, { version: '1.1' }).toString({ lineWidth: 0 });
}

export function parseCloudConfig(text: string): CloudConfig {
  const value = parse(text, { version: '1.1' }) as unknown;
  return typeof value === 'object' && value !== null ? (value as CloudConfig) : {};
}
