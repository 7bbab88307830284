import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** The folder holding package.json, cloud-init/, qemu/ and profiles/. */
export const projectRoot = resolve(import.meta.dirname, '../..');

/** A file shipped with guestforge (cloud-init fragments, qemu templates). */
export function readShipped(...parts: string[]): Promise<string> {
  return readFile(join(projectRoot, ...parts), 'utf8');
}

export async function guestforgeVersion(): Promise<string> {
  const pkg = JSON.parse(await readShipped('package.json')) as { version: string };
  return pkg.version;
}
