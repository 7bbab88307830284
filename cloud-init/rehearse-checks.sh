#!/bin/sh
# guestforge rehearse: checks run as root from the cluster's runcmd, i.e. at
# the end of the VM's first boot with the cluster's seed. Each prints
#   GUESTFORGE-CHECK:<nonce>:<id> pass|fail <detail>
# to the serial console, then one GUESTFORGE-RESULT line.
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
host_keys_fresh() {
  boot=$(date -d "$(uptime -s)" +%s)
  keys=$(ls /etc/ssh/ssh_host_*_key 2>/dev/null)
  [ -n "$keys" ] || { echo "no SSH host keys"; return 1; }
  for k in $keys; do
    [ "$(stat -c %Y "$k")" -ge "$boot" ] || { echo "$k is older than this boot (shipped in the image)"; return 1; }
  done
  echo "made at this boot: $(echo "$keys" | sed 's,/etc/ssh/ssh_host_,,; s,_key,,' | tr '\n' ' ')"
}

check rehearse.runcmd runcmd_ran
check owner.ids owner_ids
for m in $MOUNTS; do check "nfs.${m%%:*}" nfs_mounted "${m#*:}"; done
check ssh.host-keys host_keys_fresh
