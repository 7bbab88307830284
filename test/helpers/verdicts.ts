/**
 * What `guestforge verify` without a profile gives a good Linux guest made by hand: every rule
 * passes but the ones a profile or --require asks for (vRDMA's, size.no-rocm, which only a
 * bootstrapped Debian 13 profile's ucx-no-rocm trim asks for, and boot.secure-boot), which are
 * skipped; and boot.firmware warns, since a disk made in a test has no boot loader, which verify
 * without a firmware claim states as a warning.
 */
export function unaskedVerdict(id: string): 'skip' | 'pass' | 'warn' {
  if (id === 'boot.firmware') return 'warn';
  return id.startsWith('vrdma.') || id === 'size.no-rocm' || id === 'boot.secure-boot' ? 'skip' : 'pass';
}
