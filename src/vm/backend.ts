/** Which runner starts a stage's VM: qemu as our child, or a libvirt domain. */
import type { Logger } from '../log.ts';
import { chooseAccel, probeAccel, type Accel } from './accel.ts';
import { defaultUri, isRemote, libvirtStarter, virsh, type LibvirtStartOptions, type LibvirtTarget } from './libvirt.ts';
import { startQemu } from './qemu.ts';
import type { VmStarter } from './runner.ts';

export type Backend = { kind: 'qemu' } | { kind: 'libvirt'; target: LibvirtTarget };

/** The profile's `build` section's say (profile/schema.ts checks the URI and the pool). */
export interface BackendChoice {
  backend: 'qemu' | 'libvirt';
  connect?: string | undefined;
  pool: string;
}

export function backendOf(build: BackendChoice): Backend {
  if (build.backend === 'qemu') return { kind: 'qemu' };
  return { kind: 'libvirt', target: { ...(build.connect ? { uri: build.connect } : {}), pool: build.pool } };
}

export function describeBackend(backend: Backend): string {
  return backend.kind === 'qemu' ? 'qemu' : `libvirt ${backend.target.uri ?? defaultUri}`;
}

export function starterFor(backend: Backend, options: LibvirtStartOptions): VmStarter {
  return backend.kind === 'qemu' ? startQemu : libvirtStarter(backend.target, options);
}

/** The accelerator the backend's VMs run with: asked for, probed here, or (remote libvirt) asked of that host. */
export async function resolveAccel(wanted: 'auto' | Accel, log: Logger, backend?: Backend): Promise<Accel> {
  if (backend?.kind === 'libvirt' && isRemote(backend.target.uri)) {
    // The local probe says nothing about another host: ask its libvirt.
    if (wanted !== 'auto') return wanted;
    const kvm = await virsh(backend.target.uri, ['domcapabilities', '--virttype', 'kvm'], { allowFailure: true });
    const accel: Accel = kvm.exitCode === 0 ? 'kvm' : 'tcg';
    log.detail(`accelerator on ${backend.target.uri}: ${accel} (libvirt domcapabilities --virttype kvm ${kvm.exitCode === 0 ? 'works' : 'fails'}; --accel to choose)`);
    return accel;
  }
  if (wanted === 'tcg') {
    log.detail('accelerator: tcg (asked for; no KVM probe)');
    return 'tcg';
  }
  const verdict = await probeAccel();
  const accel = chooseAccel(wanted, verdict);
  log.detail(`accelerator: ${accel} (${verdict.reason})`);
  return accel;
}
