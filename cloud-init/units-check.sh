# Shared by smoke-checks.sh and rehearse-checks.sh (guestforge puts it in place of
# their marker line): no unit failed on the way, else each failed one is named
# with its last log lines. Units that failed are what a batch job would meet.
# Its names must not be ones the callers use (rehearse-checks.sh's $failed, $out).
no_failed_units() {
  failed_units=$(systemctl --failed --no-legend --plain 2>/dev/null | awk '{ print $1 }')
  [ -z "$failed_units" ] && { echo "no failed unit"; return 0; }
  for u in $failed_units; do printf '%s: %s; ' "$u" "$(journalctl -b -u "$u" -n 3 --no-pager -o cat 2>/dev/null | tr '\n' ' ' | cut -c1-300)"; done
  echo
  return 1
}
