#!/bin/sh
# guestforge: add the soft-RoCE (rdma_rxe) link at boot; `rdma link add`
# does not persist. Run by guestforge-vrdma.service.
#   guestforge-vrdma-link [NETDEV]   default: the NIC of the default route, else the first NIC
# A NIC that already has an RDMA device (a hardware VF that rdma-core's udev
# rules set up) is left alone.
set -eu
dev=${1:-}
if [ -z "$dev" ]; then
  for _ in $(seq 30); do
    dev=$(ip -o route show default 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n1)
    [ -n "$dev" ] && break
    sleep 1
  done
fi
[ -n "$dev" ] || dev=$(ls /sys/class/net | grep -v '^lo$' | head -n1)
[ -n "$dev" ] || { echo "guestforge-vrdma: no network interface" >&2; exit 1; }
if rdma link show 2>/dev/null | grep -q "netdev $dev\$\|netdev $dev "; then
  echo "guestforge-vrdma: $dev already has an RDMA link"
  exit 0
fi
modprobe rdma_rxe
rdma link add rxe0 type rxe netdev "$dev"
rdma link show
