#!/bin/sh
# guestforge result reporter. Runs as cloud-init's power_state condition, i.e.
# after cloud-init has finished, prints one result line to the serial console
# and exits 0 so the VM powers off either way (a failed build VM kept for
# debugging excepted: see below; a smoke VM powers off once its boot plot is
# sent, and says exit 1 so that cloud-init does not).
#   report.sh NONCE [CHECKS_SCRIPT]
nonce=$1
checks=${2:-}
tag=GUESTFORGE
console=/dev/ttyS0
[ -w "$console" ] || console=/dev/console
mkdir -p /run/guestforge
say() { printf '%s\n' "$*" > "$console"; }

detail=""
# Each python start costs seconds under TCG: cloud-init status runs once, and
# what the checks need from it and from result.json is kept in /run/guestforge.
cloud-init status --wait > /run/guestforge/status.out 2>/dev/null
rc=$?
status=$(sed -n 's/^[.]*status: //p' /run/guestforge/status.out)
echo "status: ${status:-unknown}" > /run/guestforge/cloud-init-status
# cloud-init 23.4+ says 2 for "degraded": it went on past recoverable errors (a deprecated key,
# a module's warning). The image's every boot would meet them: an error, with what they were.
case "$rc" in
  0|2) result=ok ;;
  *) result=error; detail="cloud-init status: ${status:-unknown} (exit $rc)" ;;
esac
if [ -f /run/cloud-init/result.json ]; then
  # One python start: the errors, the datasource, and how long each cloud-init stage took (the last
  # one, modules-final, is still running: until now).
  errors=$(python3 -c '
import json, sys, time
v = json.load(open(sys.argv[1]))["v1"]
open(sys.argv[2], "w").write("%s\n" % v.get("datasource"))
try:
    st = json.load(open(sys.argv[3]))["v1"]
    with open(sys.argv[4], "w") as f:
        for name in ("init-local", "init", "modules-config", "modules-final"):
            s = (st.get(name) or {}).get("start")
            if s:
                f.write("%s %d\n" % (name, 1000 * ((st[name].get("finished") or time.time()) - s)))
    with open(sys.argv[5], "w") as f:
        for name in ("init-local", "init", "modules-config", "modules-final"):
            for level, messages in ((st.get(name) or {}).get("recoverable_errors") or {}).items():
                for m in messages:
                    f.write("%s %s: %s\n" % (name, level, " ".join(str(m).split())[:300]))
except Exception:
    pass
print("; ".join(v["errors"]))' /run/cloud-init/result.json /run/guestforge/datasource /run/cloud-init/status.json /run/guestforge/cloud-init-stages /run/guestforge/recoverable 2>/dev/null)
  if [ -n "$errors" ]; then result=error; detail="${detail:+$detail; }$errors"; fi
fi
if [ "$rc" = 2 ]; then
  result=error
  why=$(head -n 3 /run/guestforge/recoverable 2>/dev/null | tr '\n' ';' | sed 's/;$//')
  detail="${detail:+$detail; }cloud-init finished degraded (exit 2): ${why:-see /var/log/cloud-init.log}"
fi
# A deprecated key is logged as DEPRECATED, or only as INFO for features deprecated after the
# distribution's boundary, and then does not make the run degraded: the log says it either way.
deprecated=$(grep -E '\[DEPRECATED\]|is deprecated in [0-9]|[Dd]eprecated in version|has been deprecated|Deprecated cloud-config provided' /var/log/cloud-init.log 2>/dev/null | head -n 3 | sed 's/^[^]]*\]: //' | tr '\n' ';' | cut -c1-400)
if [ -n "$deprecated" ]; then
  result=error
  detail="${detail:+$detail; }cloud-init deprecations: ${deprecated%;}"
fi
if [ -s /run/guestforge/failed ]; then
  result=error
  detail="$(cat /run/guestforge/failed)${detail:+; $detail}"
fi
if [ -n "$checks" ] && [ -f "$checks" ]; then
  # Each check prints "CHECK id pass|fail detail"; any fail fails the run.
  sh "$checks" > /run/guestforge/checks.out 2>&1
  while IFS= read -r line; do
    case "$line" in CHECK\ *) say "$tag-CHECK:$nonce:${line#CHECK }" ;; esac
  done < /run/guestforge/checks.out
  if grep -q '^CHECK [^ ]* fail' /run/guestforge/checks.out; then
    result=error; detail="${detail:+$detail; }a smoke check failed"
  fi
fi
# `build --on-error keep`: after a failure only, open the build VM to its admin
# with what the seed carries beside user-data (a one-time root password, an SSH
# key) and stay up. A build VM that succeeds never reads them, so they reach no
# disk that is kept; the failed one's disk is thrown away on resume or discard.
stay=0
if [ "$result" = error ]; then
  seed=/run/guestforge/seed
  mkdir -p "$seed"
  for dev in /dev/sr0 $(blkid -o device -t TYPE=iso9660 2>/dev/null); do
    [ -b "$dev" ] && mount -o ro "$dev" "$seed" 2>/dev/null || continue
    if [ -f "$seed/guestforge-debug-password" ]; then
      stay=1
      printf 'root:%s\n' "$(cat "$seed/guestforge-debug-password")" | chpasswd \
        && say "$tag-KEPT:$nonce:console" \
        && say "guestforge: kept for debugging: root can log in on the console with the one-time password"
    fi
    if [ -f "$seed/guestforge-debug-ssh-key" ]; then
      stay=1
      mkdir -p /root/.ssh && chmod 700 /root/.ssh
      cp "$seed/guestforge-debug-ssh-key" /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys
      if systemctl start ssh.service 2>/dev/null || systemctl start sshd.service 2>/dev/null; then
        say "guestforge: kept for debugging: root can log in over SSH with the debug key"
      else
        say "guestforge: kept for debugging: this guest has no SSH server (install openssh-server for --debug-ssh-key)"
      fi
    fi
    umount "$seed"
    [ "$stay" = 1 ] && break
  done
fi
if [ "$stay" = 1 ]; then
  # Everything stays for the admin to read (user-data, the commands); exit 1: no power-off.
  say "$tag-RESULT:$nonce:$result${detail:+:$detail}"
  exit 1
fi
# cloud-init has finished: what the seed said (users' keys and hashes, the
# profile's commands) must not stay on the disk the stage cache keeps.
for d in /var/lib/cloud/instances/*/; do
  rm -rf "$d"user-data.txt* "$d"vendor-data*.txt* "$d"cloud-config.txt "$d"vendor-cloud-config.txt "$d"obj.pkl "$d"scripts
done
rm -rf /var/lib/guestforge/commands
# The guest's clock at the result line, so the host can tell the time before the kernel from it.
up=$(cut -d' ' -f1 /proc/uptime)
say "$tag-RESULT:$nonce:$result${detail:+:$detail}"
if [ -n "$checks" ]; then
  # Where the boot's time went (smoke only), after the result: these systemd-analyze runs take
  # seconds under TCG and are not the boot's. systemd's phase timestamps (systemd-analyze time
  # refuses while cloud-final still runs), its slowest units, cloud-init's stages.
  phases=$(systemctl show -p InitRDTimestampMonotonic -p UserspaceTimestampMonotonic 2>/dev/null | tr '\n' ' ')
  say "$tag-TIMING:$nonce:phases uptime=$up $phases"
  systemd-analyze blame --no-pager 2>/dev/null | head -n 15 | while IFS= read -r line; do say "$tag-TIMING:$nonce:unit $line"; done
  # What cloud-config waited for, one unit after the other (its two header lines left out).
  systemd-analyze critical-chain --no-pager cloud-config.service 2>/dev/null | grep -F '.' | grep -v '^The time' | head -n 30 | while IFS= read -r line; do say "$tag-TIMING:$nonce:chain $line"; done
  [ -f /run/guestforge/cloud-init-stages ] && while IFS= read -r line; do say "$tag-TIMING:$nonce:cloud-init $line"; done < /run/guestforge/cloud-init-stages
fi
if [ -n "$checks" ] && command -v systemd-run > /dev/null 2>&1 && command -v systemd-analyze > /dev/null 2>&1; then
  # Smoke: the boot's plot for the host. systemd-analyze plot wants the boot finished, and it is
  # not while cloud-final runs this script: a service of its own (simple, so its start job ends at
  # once) waits for that, a minute at most, sends the plot after the result (gzip, base64, then
  # "end"; "none" when it could not make one), and the VM powers off when the service ends, however
  # it ends, within 90 s (instead of cloud-init: exit 1, its condition false). No "$" inside: systemd
  # would expand it.
  plot="timeout 60 systemctl is-system-running --wait > /dev/null 2>&1; systemd-analyze plot > /run/guestforge/plot.svg 2> /dev/null && test -s /run/guestforge/plot.svg && head -c 4000000 /run/guestforge/plot.svg | gzip -9 | base64 -w 64 | sed 's/^/$tag-PLOT:$nonce:/' > $console && echo $tag-PLOT:$nonce:end > $console || echo $tag-PLOT:$nonce:none > $console"
  systemd-run --quiet --no-block --unit guestforge-plot -p RuntimeMaxSec=90 -p SuccessAction=poweroff -p FailureAction=poweroff sh -c "$plot" > /dev/null 2>&1 && exit 1
fi
exit 0
