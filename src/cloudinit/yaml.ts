import { Document, parse } from 'yaml';

/** A cloud-config document as a value: parsed, merged and written back as YAML 1.1. */
export type CloudConfig = Record<string, unknown>;

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

/** cloud-config keys whose values are secrets wherever they appear. */
const secretKeys = new Set([
  'hashed_passwd', 'passwd', 'password', 'plain_text_passwd', 'chpasswd', 'ssh_authorized_keys', 'ssh_keys', 'ssh_private_key', 'ca_certs',
  'private_key', 'token', 'activation-key', 'activation_key', 'registration_key', 'validation_key', 'validation_cert', 'client_key',
]);

/**
 * Pure: the config with every secret value as `<redacted>`: the keys above
 * anywhere, and the content of write_files entries whose path is in
 * `secretPaths` (the profile marked them `secret: true`) or that carry the mark.
 */
export function redactCloudConfig(value: unknown, secretPaths: readonly string[] = []): unknown {
  if (Array.isArray(value)) return value.map((v) => redactCloudConfig(v, secretPaths));
  if (typeof value !== 'object' || value === null) return value;
  const record = value as Record<string, unknown>;
  const marked = record.secret === true || (typeof record.path === 'string' && secretPaths.includes(record.path) && 'content' in record);
  return Object.fromEntries(Object.entries(record).map(([k, v]) => {
    if (secretKeys.has(k) || (marked && (k === 'content' || k === 'source'))) return [k, '<redacted>'];
    return [k, redactCloudConfig(v, secretPaths)];
  }));
}

/** A user-data text fit for logs and `plan`: secrets replaced; text that is not a cloud-config is withheld whole. */
export function redactUserData(text: string, secretPaths: readonly string[] = []): string {
  if (!text.startsWith('#cloud-config')) return '# <redacted: not a cloud-config>\n';
  return renderCloudConfig(redactCloudConfig(parseCloudConfig(text), secretPaths) as CloudConfig);
}
