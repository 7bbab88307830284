#!/bin/sh
# Runs the profile's commands in order (one file per command under
# /var/lib/guestforge/commands/), stopping at the first failure and leaving
# its description in /run/guestforge/failed for the reporter.
mkdir -p /run/guestforge
for script in /var/lib/guestforge/commands/*.sh; do
  [ -f "$script" ] || continue
  label=$(sed -n 's/^# guestforge-label: //p' "$script")
  echo "guestforge: running $label"
  sh -e "$script"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "$label failed (exit $rc)" > /run/guestforge/failed
    echo "guestforge: $label failed (exit $rc)" > /dev/console
    exit 1
  fi
done
