/**
 * The firmware a VM boots with. SeaBIOS is qemu's default; OVMF comes from Debian's `ovmf`
 * package, its code read-only and a fresh copy of its variable store per VM (a VM's boot entries
 * and Secure Boot state never reach the next one). Secure Boot: OVMF's Secure Boot build with
 * Microsoft's keys enrolled (`*.ms.fd`, as Debian ships it), on q35 with SMM, so that the guest
 * cannot rewrite the variables that hold the keys.
 */
import { access, copyFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import type { BootFirmware } from '../model/disk.ts';
import { UserError } from '../errors.ts';

/** OVMF as a VM is given it: its code, the VM's own vars file, and whether Secure Boot's SMM lock is on. */
export interface UefiFirmware {
  code: string;
  vars: string;
  secure: boolean;
}

/** Debian's ovmf package (2022.11 on Debian 12): the 4 MiB builds, the only ones with room for Microsoft's keys. */
export const ovmfDir = '/usr/share/OVMF';

/** Pure: the code and the vars template of a boot firmware (undefined for SeaBIOS). */
export function ovmfFiles(boot: BootFirmware, dir = ovmfDir): { code: string; vars: string } | undefined {
  if (boot === 'bios') return undefined;
  return boot === 'uefi-secure'
    ? { code: join(dir, 'OVMF_CODE_4M.ms.fd'), vars: join(dir, 'OVMF_VARS_4M.ms.fd') }
    : { code: join(dir, 'OVMF_CODE_4M.fd'), vars: join(dir, 'OVMF_VARS_4M.fd') };
}

/** Pure: the machine a boot firmware needs by default: i440fx for SeaBIOS, q35 for OVMF (its Secure Boot build needs SMM, which only q35 has). */
export function machineFor(boot: BootFirmware): string {
  return boot === 'bios' ? 'pc' : 'q35';
}

/**
 * The firmware of one VM: for OVMF, a fresh owner-only copy of the vars template at `varsPath`.
 * Undefined for SeaBIOS. A host without the ovmf package gets an error that says which.
 */
export async function prepareFirmware(boot: BootFirmware, varsPath: string, dir = ovmfDir): Promise<UefiFirmware | undefined> {
  const files = ovmfFiles(boot, dir);
  if (!files) return undefined;
  for (const file of [files.code, files.vars]) {
    if (!(await access(file).then(() => true, () => false))) {
      throw new UserError(`no OVMF firmware at ${file}: a UEFI boot needs Debian's ovmf package`, { hint: 'apt-get install ovmf (scripts/setup-host.sh installs it with the other host packages)' });
    }
  }
  await copyFile(files.vars, varsPath);
  await chmod(varsPath, 0o600);
  return { code: files.code, vars: varsPath, secure: boot === 'uefi-secure' };
}
