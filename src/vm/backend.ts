/** Which runner starts a stage's VM: qemu as our child, or a libvirt domain. */
import type { Profile } from '../profile/schema.ts';
import { libvirtStarter, type LibvirtTarget } from './libvirt.ts';
import { startQemu, type VmStarter } from './qemu.ts';

export type Backend = { kind: 'qemu' } | { kind: 'libvirt'; target: LibvirtTarget };

export function backendOf(build: Profile['build']): Backend {
  if (build.backend === 'qemu') return { kind: 'qemu' };
  return { kind: 'libvirt', target: { ...(build.connect ? { uri: build.connect } : {}), pool: build.pool } };
}

export function describeBackend(backend: Backend): string {
  return backend.kind === 'qemu' ? 'qemu' : `libvirt ${backend.target.uri ?? 'qemu:///system'}`;
}

export function starterFor(backend: Backend, options: { namePrefix: string; diskIsResult: boolean }): VmStarter {
  return backend.kind === 'qemu' ? startQemu : libvirtStarter(backend.target, options);
}
