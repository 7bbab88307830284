#!/usr/bin/env bash
# Installs what guestforge needs on a Debian 12 host (as root): the host tools
# listed in scripts/host-packages.txt (linux-image-amd64 gives libguestfs's
# appliance and the KVM probe a kernel), and the npm dependencies.
#   --bench: also what only `npm run bench` uses (scripts/bench-packages.txt:
#   diskimage-builder, its yardstick).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
xargs -a scripts/host-packages.txt apt-get install -y -q --no-install-recommends
if [ "${1:-}" = --bench ]; then
  xargs -a scripts/bench-packages.txt apt-get install -y -q --no-install-recommends
fi
# docker-registry is there for the tests, which start their own on 127.0.0.1; where systemd runs,
# the package starts one listening on every address: stop it and keep it off.
systemctl disable --now docker-registry.service > /dev/null 2>&1 || true
npm ci --no-audit --no-fund
