#!/bin/sh
# guestforge rehearse: checks run as root from the cluster's runcmd, i.e. at
# the end of the VM's first boot with the cluster's seed. Each prints
#   GUESTFORGE-CHECK:<nonce>:<id> pass|fail <detail>
# to the serial console (a check that hands the host a field adds
#   GUESTFORGE-DATA:<nonce>:<id> <key> <value>), then one GUESTFORGE-RESULT line.
# guestforge sets NONCE, OWNER, OWNER_UID, OWNER_GID and MOUNTS ("name:dir ...")
# in front of this file and appends the generated layout checks.
console=/dev/ttyS0
[ -w "$console" ] || console=/dev/console
out=/run/guestforge-rehearse
mkdir -p "$out"
failed=0
check() {
  id=$1; shift
  if "$@" > "$out/check.out" 2>&1; then status=pass; else status=fail; failed=1; fi
  line="GUESTFORGE-CHECK:$NONCE:$id $status $(tail -n1 "$out/check.out" | tr -d '\r')"
  echo "$line" >> "$out/checks"
  echo "$line" > "$console"
}

# @UNITS_CHECK@

runcmd_ran() { echo "runcmd ran at boot with instance-id $(cat /var/lib/cloud/data/instance-id 2>/dev/null || echo '?')"; }
owner_ids() {
  u=$(id -u "$OWNER" 2>/dev/null) && g=$(id -g "$OWNER") || { echo "no user $OWNER"; return 1; }
  [ "$u:$g" = "$OWNER_UID:$OWNER_GID" ] || { echo "$OWNER is $u:$g, the cluster says $OWNER_UID:$OWNER_GID"; return 1; }
  echo "$OWNER is $u:$g"
}
nfs_mounted() {
  dir=$1
  fs=$(findmnt -n -o FSTYPE,SOURCE --mountpoint "$dir" 2>/dev/null | head -n1)
  case "$fs" in nfs*) echo "$dir is $fs"; return 0 ;; esac
  # The mounts run early in boot, the cluster's package install late: an
  # nfs-common installed by this boot came too late for them.
  if [ ! -x /sbin/mount.nfs ] || grep -q " install nfs-common:" /var/log/dpkg.log 2>/dev/null; then
    echo "mount of $dir: nfs-common not installed (the cluster's boot-time install is slow and needs a mirror)"
  else
    echo "mount of $dir: not an NFS mount (${fs:-nothing mounted}; see /var/log/cloud-init.log)"
  fi
  return 1
}
# The cluster's user-data as this image's cloud-init reads it: no deprecated key or module (logged as
# DEPRECATED, or as INFO for features deprecated after the distribution's boundary).
no_deprecations() {
  found=$(grep -E '\[DEPRECATED\]|is deprecated in [0-9]|[Dd]eprecated in version|has been deprecated|Deprecated cloud-config provided' "${CLOUD_INIT_LOG:-/var/log/cloud-init.log}" 2>/dev/null | head -n 3 | sed 's/^[^]]*\]: //' | tr '\n' ';' | cut -c1-400)
  [ -z "$found" ] && { echo "no deprecation in /var/log/cloud-init.log"; return 0; }
  echo "deprecated: ${found%;}"
  return 1
}
# What the cluster's boot-time `packages` cost this boot (cloud-init times each module; runcmd runs
# after it): an apt-get update, then an install of what is listed, present or not. The module is
# named as cloud.cfg lists it (Debian: package-update-upgrade-install, dashes).
boot_packages() {
  pkg_line=$(grep -a -E 'finish: modules-final/config-package[-_]update[-_]upgrade[-_]install:' "${CLOUD_INIT_LOG:-/var/log/cloud-init.log}" 2>/dev/null | tail -n 1)
  [ -n "$pkg_line" ] || { echo "no boot-time package run (the cluster's user-data lists no packages)"; return 0; }
  pkg_took=$(echo "$pkg_line" | sed -n 's/.*took \([0-9.]*\) seconds.*/\1/p')
  if ! echo "$pkg_line" | grep -q ': SUCCESS:'; then
    echo "the cluster's boot-time package run failed after ${pkg_took:-?} s (see /var/log/cloud-init.log)"
    return 1
  fi
  echo "the cluster's boot-time package run took ${pkg_took:-?} s (apt-get update, then an install of every listed package, present or not)"
}
# The same run's seconds alone, when it ran and succeeded (a field for the host's report).
packages_seconds() {
  grep -a -E 'finish: modules-final/config-package[-_]update[-_]upgrade[-_]install: SUCCESS:' "${CLOUD_INIT_LOG:-/var/log/cloud-init.log}" 2>/dev/null | tail -n 1 | sed -n 's/.*took \([0-9.]*\) seconds.*/\1/p'
}
# What the cluster's own runcmd lines cost before these checks (host keys, sshd's restart): from
# cloud-init's start of the runcmd script (scripts-user) to now. cloud-init stamps its log in UTC,
# whatever the guest's timezone (the cluster's user-data may set one).
runcmd_seconds() {
  start=$(grep -a -E 'start: modules-final/config-scripts[-_]user:' "${CLOUD_INIT_LOG:-/var/log/cloud-init.log}" 2>/dev/null | tail -n 1 | cut -c1-23 | tr , .)
  [ -n "$start" ] && start=$(date -u -d "$start UTC" +%s.%N 2>/dev/null) || return 0
  awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }'
}
runcmd_took=$(runcmd_seconds)
host_keys_fresh() {
  boot=$(date -d "$(uptime -s)" +%s)
  keys=$(ls /etc/ssh/ssh_host_*_key 2>/dev/null)
  [ -n "$keys" ] || { echo "no SSH host keys"; return 1; }
  for k in $keys; do
    [ "$(stat -c %Y "$k")" -ge "$boot" ] || { echo "$k is older than this boot (shipped in the image)"; return 1; }
  done
  echo "made at this boot: $(echo "$keys" | sed 's,/etc/ssh/ssh_host_,,; s,_key,,' | tr '\n' ' ')"
}

# Multi-node: the NIC on the private segment (found by its MAC), and soft-RoCE on it when the image has vRDMA.
private_dev() {
  for d in /sys/class/net/*; do
    [ "$(cat "$d/address" 2>/dev/null)" = "$PRIVATE_MAC" ] && { basename "$d"; return 0; }
  done
  return 1
}
private_net() {
  pdev=$(private_dev) || { echo "no NIC with MAC $PRIVATE_MAC"; return 1; }
  for _ in $(seq 20); do ip -4 -o addr show dev "$pdev" | grep -q " $PRIVATE_ADDR/" && break; sleep 1; done
  have=$(ip -4 -o addr show dev "$pdev" | awk '{print $4}' | tr '\n' ' ')
  echo "$pdev: ${have:-no IPv4 address}"
  ip -4 -o addr show dev "$pdev" | grep -q " $PRIVATE_ADDR/"
}
# Functions share the script's variables: no name here may be one check() uses (out, line, status, id).
vrdma_private() {
  vdev=$(private_dev) || { echo "no NIC with MAC $PRIVATE_MAC"; return 1; }
  if ! rdma link show 2>/dev/null | grep -q "netdev $vdev\( \|\$\)"; then
    modprobe rdma_rxe && rdma link add rxe_cluster type rxe netdev "$vdev" || { echo "rdma link add rxe_cluster on $vdev failed"; return 1; }
  fi
  vlink=""
  for _ in $(seq 30); do
    vlink=$(rdma link show 2>&1 | grep "netdev $vdev\( \|\$\)")
    echo "$vlink" | grep -q 'state ACTIVE' && break
    sleep 1
  done
  echo "${vlink:-no RDMA link on $vdev}"
  # The device's name, for the host's ib_send_bw between VMs (a DATA line, not these words).
  echo "$vlink" | sed -n 's,^link \([^/ ]*\)/.*,\1,p' > "$out/rdma-device"
  echo "$vlink" | grep -q 'state ACTIVE'
}

check rehearse.runcmd runcmd_ran
check owner.ids owner_ids
for m in $MOUNTS; do check "nfs.${m%%:*}" nfs_mounted "${m#*:}"; done
check ssh.host-keys host_keys_fresh
# Units that failed so far (runcmd runs late in the boot: cloud-init's own units, mounts, networking).
check units.failed no_failed_units
check cloud-init.deprecations no_deprecations
check cloud-init.packages boot_packages
# The two costs of the cluster's own user-data, as fields for the host's report.
packages_took=$(packages_seconds)
[ -n "$packages_took" ] && echo "GUESTFORGE-DATA:$NONCE:cloud-init.packages seconds $packages_took" > "$console"
[ -n "$runcmd_took" ] && echo "GUESTFORGE-DATA:$NONCE:cloud-init.runcmd seconds $runcmd_took" > "$console"
if [ -n "${PRIVATE_MAC:-}" ]; then
  check net.private private_net
  if command -v rdma > /dev/null && command -v ib_send_bw > /dev/null; then
    check vrdma.rxe-private vrdma_private
    [ -s "$out/rdma-device" ] && echo "GUESTFORGE-DATA:$NONCE:vrdma.rxe-private device $(head -n1 "$out/rdma-device")" > "$console"
  fi
fi
