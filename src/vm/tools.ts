/** The host programs the VM backends run (data only: the host tool table includes them). */
import type { ToolInfo } from '../host/tool-info.ts';

export const vmTools = {
  'qemu-system-x86_64': { apt: 'qemu-system-x86', versionArgs: ['--version'], usedBy: 'build, smoke, rehearse' },
  virsh: { apt: 'libvirt-clients', versionArgs: ['--version'], usedBy: 'build --backend libvirt' },
} as const satisfies Record<string, ToolInfo>;
