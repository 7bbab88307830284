#!/usr/bin/env bash
# Installs what guestforge needs on a Debian 12 host (as root): the host tools
# from apt, a kernel for libguestfs's appliance, and the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
  qemu-system-x86 qemu-utils libguestfs-tools libvirt-daemon-system libvirt-clients \
  xorriso mmdebstrap cpio fdisk e2fsprogs rpm squashfs-tools linux-image-amd64
npm ci --no-audit --no-fund
