#!/bin/sh
# Smoke checks run inside the booted image. Each prints
#   CHECK <id> pass|fail <detail>
# Variables WORKSPACE, OPTVM and VRDMA are set by guestforge in front of this file.
check() { id=$1; shift; if "$@" > /tmp/gf-check.out 2>&1; then echo "CHECK $id pass $(tail -n1 /tmp/gf-check.out)"; else echo "CHECK $id fail $(tail -n1 /tmp/gf-check.out | tr -d '\r')"; fi; }

cloud_init_done() { s=$(cloud-init status 2>&1); echo "$s" | tr '\n' ' '; echo "$s" | grep -q 'status: done'; }
nocloud_used() { ds=$(python3 -c 'import json; print(json.load(open("/run/cloud-init/result.json"))["v1"]["datasource"])' 2>&1); echo "$ds"; echo "$ds" | grep -q NoCloud; }
workspace_writable() { runuser -u nobody -- sh -c "f=\$(mktemp -p '$WORKSPACE') && rm -f \"\$f\"" && echo "nobody can write $WORKSPACE"; }
opt_empty() { [ ! -d /opt ] || [ -z "$(ls -A /opt)" ] || { echo "/opt holds: $(ls -A /opt | head -5 | tr '\n' ' ')"; return 1; }; echo "/opt is empty"; }
optvm_present() { [ -d "$OPTVM" ] && echo "$OPTVM: $(ls "$OPTVM" | tr '\n' ' ')"; }

check cloud-init.done cloud_init_done
check cloud-init.nocloud nocloud_used
check layout.workspace-writable workspace_writable
check layout.opt-empty opt_empty
check layout.opt-vm optvm_present
