#!/bin/sh
# Smoke checks run inside the booted image. Each prints
#   CHECK <id> pass|fail <detail>
# VRDMA, FIRMWARE (bios, uefi, uefi-secure or empty) and GROW_DISK_BYTES with
# GROW_KEEP (empty when the disk was not grown) are set by guestforge in front of this file; the layout checks are
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

# The firmware this boot came through: the kernel has EFI runtime services only after a UEFI boot.
firmware_booted() {
  if [ -d /sys/firmware/efi ]; then got=uefi; else got=bios; fi
  echo "booted through $got"; [ "$got" = "${FIRMWARE%-secure}" ]
}
# Secure Boot on, as the firmware says (its SecureBoot variable: 4 bytes of attributes, then 1)
# and as the kernel says (its boot message, and lockdown, which Debian's kernel turns on with it).
secure_boot_on() {
  var=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
  value=$(od -An -tu1 -j4 -N1 "$var" 2>/dev/null | tr -d ' ')
  kernel=$(dmesg 2>/dev/null | grep -io 'secure boot enabled' | head -n1)
  # The ring buffer may have wrapped by now: the journal keeps the boot's kernel messages too.
  [ -n "$kernel" ] || kernel=$(journalctl -k -b -q 2>/dev/null | grep -io 'secure boot enabled' | head -n1)
  lockdown=$(cat /sys/kernel/security/lockdown 2>/dev/null)
  echo "SecureBoot variable ${value:-missing}; kernel: ${kernel:-no Secure Boot message}; lockdown: ${lockdown:-none}"
  [ "$value" = 1 ] && [ -n "$kernel" ]
}
# The cluster enlarged the disk it copied: growpart has moved the root's end to the disk's (within
# the MiB a GPT's backup table and alignment take), resize2fs has grown the file system to the
# partition, and the partitions before the root (apps volume, ESP; GROW_KEEP: number:start:size
# in sectors) are where the image had them.
disk_grown() {
  root=$(findmnt -no SOURCE /)
  part=${root##*/}
  disk=$(lsblk -no PKNAME "$root")
  disk_bytes=$(blockdev --getsize64 "/dev/$disk")
  start=$(cat "/sys/class/block/$part/start"); size=$(cat "/sys/class/block/$part/size")
  end_bytes=$(( (start + size) * 512 ))
  fs_bytes=$(dumpe2fs -h "$root" 2>/dev/null | awk -F: '/^Block count/ { c = $2 } /^Block size/ { s = $2 } END { printf "%d", c * s }')
  echo "disk $disk_bytes bytes (expected $GROW_DISK_BYTES); root $part ends at $end_bytes, file system $fs_bytes bytes of $(( size * 512 ))"
  [ "$disk_bytes" = "$GROW_DISK_BYTES" ] || return 1
  [ $(( disk_bytes - end_bytes )) -le $(( 1048576 + 33 * 512 )) ] || return 1
  [ $(( size * 512 - fs_bytes )) -lt 1048576 ] || return 1
  for kept in $GROW_KEEP; do
    n=${kept%%:*}; rest=${kept#*:}
    p=$(lsblk -nlo NAME "/dev/$disk" | grep -E "^${disk}p?${n}\$")
    got="$(cat "/sys/class/block/$p/start" 2>/dev/null):$(cat "/sys/class/block/$p/size" 2>/dev/null)"
    [ "$got" = "$rest" ] || { echo "partition $n is at $got, the image had it at $rest"; return 1; }
  done
  echo "disk $disk_bytes bytes; root $part grown to $(( size * 512 )) bytes, file system $fs_bytes; partitions ${GROW_KEEP:-none} unchanged"
}

if [ -n "$FIRMWARE" ]; then
  check firmware.booted firmware_booted
  [ "$FIRMWARE" = uefi-secure ] && check firmware.secure-boot secure_boot_on
fi
[ -n "$GROW_DISK_BYTES" ] && check disk.grown disk_grown

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
