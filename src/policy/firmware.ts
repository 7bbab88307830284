/**
 * Which firmwares an image claims, and which boots prove the claim. Pure: the profile's view
 * (disk.firmware, disk.secureBoot) meets the families here, below the drivers, so that plan,
 * smoke, verify and the records agree.
 */
import type { BootFirmware, Firmware } from '../model/disk.ts';
import { onlyFirmware } from '../os/format.ts';

/** The parts of a profile the firmware depends on. */
export interface FirmwareFields {
  os: { family: string };
  base: { bootstrap?: unknown };
  disk: { firmware?: Firmware | undefined; secureBoot: boolean };
}

/** The default of a bootstrapped base: one disk for every cloud's firmware (docs/boot.md has the measurements). */
export const defaultFirmware: Firmware = 'hybrid';

/**
 * What the image claims: a bootstrapped base is made so (default hybrid); a family whose loader
 * knows one firmware (OSv) claims that one; an imported image claims what the profile says, or nothing (verify then
 * states what it finds).
 */
export function firmwareOf(profile: FirmwareFields): Firmware | undefined {
  const only = onlyFirmware(profile.os.family);
  if (only) return only.only;
  if (profile.base.bootstrap) return profile.disk.firmware ?? defaultFirmware;
  return profile.disk.firmware;
}

/** The firmwares a claim can boot under, as verify names them. */
export function claimedFirmwares(firmware: Firmware): ('bios' | 'uefi')[] {
  return firmware === 'hybrid' ? ['bios', 'uefi'] : [firmware];
}

/** The boots that prove a claim: each firmware once, UEFI under Secure Boot when the profile asks for it. */
export function bootFirmwares(firmware: Firmware, secureBoot: boolean): BootFirmware[] {
  return claimedFirmwares(firmware).map((f) => (f === 'uefi' && secureBoot ? 'uefi-secure' : f));
}

/** How each boot firmware is named in messages, reports and the bench. */
export const bootFirmwareTitle: Record<BootFirmware, string> = {
  bios: 'SeaBIOS on pc (i440fx)',
  uefi: 'OVMF on q35',
  'uefi-secure': 'OVMF on q35, Secure Boot enforced (Microsoft keys)',
};

/** Why the firmware fields do not go together, with the field, or undefined. */
export function firmwareProblem(profile: FirmwareFields): { path: string[]; message: string; hint?: string } | undefined {
  const firmware = firmwareOf(profile);
  const only = onlyFirmware(profile.os.family);
  if (only && profile.disk.firmware !== undefined && profile.disk.firmware !== only.only) {
    return { path: ['disk', 'firmware'], message: `${profile.os.family} images boot under ${only.only} only, not ${profile.disk.firmware}: ${only.why}`, hint: 'leave disk.firmware out' };
  }
  if (profile.disk.secureBoot && (firmware === undefined || firmware === 'bios')) {
    return { path: ['disk', 'secureBoot'], message: `Secure Boot is a UEFI feature, and this image ${firmware === 'bios' ? 'boots under BIOS only' : 'claims no firmware'}`, hint: 'set disk.firmware to hybrid or uefi' };
  }
  return undefined;
}

/**
 * The packages of a signed boot chain, as the SBOM and the manifest name them: Debian's shim and
 * signed GRUB and its kernel images (signed in the archive), RedHat's shim, GRUB and kernel.
 */
export const bootChainPackage = /^(shim-signed|shim-signed-common|shim-helpers-amd64-signed|grub-efi-amd64-signed|grub-efi-amd64-bin|grub-pc-bin|grub-cloud-amd64|grub-pc|grub-efi-amd64|linux-image-[0-9][^ ]*|shim-x64|grub2-efi-x64|grub2-pc|kernel-core)$/;
