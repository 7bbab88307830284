/**
 * What `guestforge verify` without a profile gives a good Linux guest made by hand: every rule
 * passes but the ones a profile or --require asks for (vRDMA's, size.no-rocm, which only a
 * bootstrapped Debian 13 profile's ucx-no-rocm trim asks for, and boot.secure-boot), which are
 * skipped; and boot.firmware, with no claim to check, states what it found: a warning for a disk
 * with no boot code at all, a pass where the tool that partitioned it left some (parted on an
 * LVM disk), never a failure.
 */
export function unaskedVerdicts(id: string): ('skip' | 'pass' | 'warn')[] {
  if (id === 'boot.firmware') return ['warn', 'pass'];
  return [id.startsWith('vrdma.') || id === 'size.no-rocm' || id === 'boot.secure-boot' ? 'skip' : 'pass'];
}
