#!/bin/sh
# Smoke checks run inside the booted image. Each prints
#   CHECK <id> pass|fail <detail>
# VRDMA is set by guestforge in front of this file; the layout checks are
# generated from the layout rule table (src/policy/layout.ts).
check() { id=$1; shift; if "$@" > /tmp/gf-check.out 2>&1; then echo "CHECK $id pass $(tail -n1 /tmp/gf-check.out)"; else echo "CHECK $id fail $(tail -n1 /tmp/gf-check.out | tr -d '\r')"; fi; }

# report.sh (which runs these checks) kept cloud-init's status and datasource in /run/guestforge.
cloud_init_done() { s=$(cat /run/guestforge/cloud-init-status 2>/dev/null || cloud-init status 2>&1); echo "$s" | tr '\n' ' '; echo "$s" | grep -q 'status: done'; }
nocloud_used() { ds=$(cat /run/guestforge/datasource 2>/dev/null) || ds="no datasource recorded in /run/cloud-init/result.json"; echo "$ds"; echo "$ds" | grep -q NoCloud; }

# @UNITS_CHECK@

check cloud-init.done cloud_init_done
check cloud-init.nocloud nocloud_used
check units.failed no_failed_units
# @LAYOUT_CHECKS@

# vRDMA (soft-RoCE): the link set up at boot, the verbs device, and a real
# loopback exchange over it.
vrdma_link() {
  for _ in $(seq 60); do systemctl is-active --quiet guestforge-vrdma.service && break; sleep 1; done
  out=$(rdma link show 2>&1); echo "$out" | tr '\n' ' '
  echo "$out" | grep -q 'state ACTIVE'
}
vrdma_devices() {
  dev=$(ibv_devices 2>&1 | awk 'NR > 2 && NF { print $1 }' | head -n1)
  [ -n "$dev" ] && echo "verbs device: $dev"
}
vrdma_loopback() {
  dev=$(ibv_devices 2>/dev/null | awk 'NR > 2 && NF { print $1 }' | head -n1)
  timeout 60 ib_send_bw -d "$dev" -F -n 200 > /tmp/gf-ib-server.out 2>&1 &
  server=$!
  sleep 2
  timeout 60 ib_send_bw -d "$dev" -F -n 200 127.0.0.1 > /tmp/gf-ib-client.out 2>&1
  rc=$?
  wait "$server"; src=$?
  line=$(grep -E '^ *[0-9]+ +[0-9]+ ' /tmp/gf-ib-client.out | tail -n1 | tr -s ' \t' '  ' | sed 's/^ //; s/ $//')
  if [ "$rc" -eq 0 ] && [ "$src" -eq 0 ] && [ -n "$line" ]; then
    echo "ib_send_bw over $dev: #bytes #iters BWpeak BWavg MsgRate = $line"
  else
    echo "ib_send_bw failed (client $rc, server $src): $(tail -n2 /tmp/gf-ib-client.out | tr '\n' ' ')"
    return 1
  fi
}

if [ "$VRDMA" = 1 ]; then
  check vrdma.link vrdma_link
  check vrdma.ibv-devices vrdma_devices
  check vrdma.loopback vrdma_loopback
fi
