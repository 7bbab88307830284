/**
 * The boot trims of every Linux family (cloud-init's and systemd's), which each family's
 * format lists among its own. Data only: this file, os/format.ts and os/<family>/format.ts
 * import nothing but zod and src/model/, so the profile schema and policy/ below the drivers
 * can read them (test/layers.test.ts).
 */
import type { BootTrim } from '../model/trim.ts';

export const cloudInitKeysToConsole: BootTrim = {
  id: 'cloud-init-keys-to-console',
  what: 'SSH host key fingerprints no longer printed on the console (`ssh: {emit_keys_to_console: false}`)',
  why: 'nobody reads a batch VM\'s console; the keys are made fresh at every job start anyway (~1.5 s per boot)',
  files: [{ path: '/etc/cloud/cloud.cfg.d/92_guestforge_keys_to_console.cfg', content: '# guestforge boot trim cloud-init-keys-to-console (boot.keep to undo)\nssh:\n  emit_keys_to_console: false\n' }],
};

export const e2scrubReap: BootTrim = {
  id: 'e2scrub-reap',
  what: 'e2scrub_reap.service masked',
  why: 'it removes leftover e2scrub LVM snapshots; a batch VM has no LVM (~2 s per boot)',
  mask: ['e2scrub_reap.service'],
};
