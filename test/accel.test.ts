import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { bootProbeKernel, chooseAccel, findProbeKernel, guestfsEnv, qemuAccelArgs } from '../src/vm/accel.ts';

const accel = suite('acceleration');
accel('argv and libguestfs environment per accelerator', () => {
  assert.equal(qemuAccelArgs('tcg'), ['-accel', 'tcg', '-cpu', 'max']);
  assert.equal(guestfsEnv('tcg'), { LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' });
  assert.equal(guestfsEnv('kvm'), { LIBGUESTFS_BACKEND: 'direct' });
});
accel('--accel kvm where the probe failed is an error with the reason', () => {
  const verdict = { accel: 'tcg' as const, kvmPresent: true, kvmUsable: false, reason: 'a Linux kernel under KVM hung' };
  assert.throws(() => chooseAccel('kvm', verdict), /not usable here: a Linux kernel under KVM hung/);
  assert.is(chooseAccel('auto', verdict), 'tcg');
});
accel('the probe recognises a kernel that really booted (real qemu, TCG)', async () => {
  const kernel = await findProbeKernel();
  assert.ok(kernel, 'no kernel in /boot: scripts/setup-host.sh installs linux-image-amd64');
  const result = await bootProbeKernel(kernel!, 'tcg', 60_000);
  assert.ok(result.ok, result.reason);
  assert.match(result.reason, /booted under TCG to its panic/);
});
accel.run();
