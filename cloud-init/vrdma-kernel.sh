#!/bin/sh
# guestforge, build VM: make sure every installed kernel has rdma_rxe.
# Variables set by guestforge in front of this file:
#   INSTALL_KERNEL (1/0)
#   KERNEL_INSTALL  command; its arguments are the versions lacking rdma_rxe
#   KERNEL_REMOVE   command; "$1" is a version that still lacks it afterwards
# GF_ROOT and GF_CONSOLE only for guestforge's own tests on the host.
root=${GF_ROOT:-}
console=${GF_CONSOLE:-/dev/ttyS0}
[ -w "$console" ] || console=/dev/console
say() { echo "guestforge: vRDMA: $*"; echo "guestforge: vRDMA: $*" > "$console"; }
has_rxe() { find "$root/lib/modules/$1" -name 'rdma_rxe.ko*' 2>/dev/null | grep -q .; }
kernels() { for k in "$root"/boot/vmlinuz-*; do [ -e "$k" ] && echo "${k#"$root"/boot/vmlinuz-}"; done; }

missing=""
for v in $(kernels); do has_rxe "$v" || missing="$missing $v"; done
[ -z "$missing" ] && { say "rdma_rxe present in $(kernels | tr '\n' ' ')"; exit 0; }
if [ "$INSTALL_KERNEL" != 1 ]; then
  say "kernel(s)$missing have no rdma_rxe and vrdma.installKernel is false: verify will fail"
  exit 0
fi
say "kernel(s)$missing have no rdma_rxe: installing a kernel that has it ($KERNEL_INSTALL)"
# shellcheck disable=SC2086
sh -c "$KERNEL_INSTALL" sh $missing || { mkdir -p /run/guestforge; echo "vRDMA: installing a kernel with rdma_rxe failed" > /run/guestforge/failed; exit 1; }
for v in $missing; do
  has_rxe "$v" && continue
  say "removing kernel $v (no rdma_rxe)"
  sh -c "$KERNEL_REMOVE" sh "$v" || { mkdir -p /run/guestforge; echo "vRDMA: removing kernel $v failed" > /run/guestforge/failed; exit 1; }
done
say "rdma_rxe present in $(kernels | tr '\n' ' ')"
