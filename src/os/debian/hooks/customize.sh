#!/bin/sh
# mmdebstrap customize hook: the guest-side settings every guestforge Debian
# base has. Runs with the finished chroot as $1.
set -eu
root=$1

# cloud-init's locale module fails without a locale, and status becomes error.
echo 'LANG=C.UTF-8' > "$root/etc/default/locale"

# GRUB on the serial console, with a short timeout. GRUB_CMDLINE_LINUX is emptied: grub-cloud-amd64's
# /etc/default/grub (hybrid images) puts earlyprintk on it, every early message sent byte by byte.
mkdir -p "$root/etc/default/grub.d"
cat > "$root/etc/default/grub.d/90-guestforge.cfg" <<'GRUB'
GRUB_TIMEOUT=1
GRUB_CMDLINE_LINUX=""
GRUB_CMDLINE_LINUX_DEFAULT="console=tty0 console=ttyS0,115200n8"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"
GRUB

# One network stack: systemd-networkd. ifupdown would run a second DHCP client.
chroot "$root" apt-get purge -y -q ifupdown > /dev/null
mkdir -p "$root/etc/systemd/network" "$root/etc/cloud/cloud.cfg.d"
cat > "$root/etc/systemd/network/90-guestforge-dhcp.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=yes
NET
chroot "$root" systemctl enable systemd-networkd systemd-resolved > /dev/null 2>&1
cat > "$root/etc/cloud/cloud.cfg.d/91_guestforge_network.cfg" <<'CFG'
system_info:
  network:
    renderers: [networkd]
CFG

# cloud-init renders networkd files that match a NIC by MAC *and* by the name it has when its local
# stage runs. From cloud-init 24.3 (trixie) that stage starts in an already running process, early
# enough under TCG to see eth0/eth1 before udev renames them ens2/ens3: the files then never match
# and a static address from the seed's network-config is never set (seen in the 2-node rehearsal).
# The local stage waits until udev has handled the devices the boot found.
mkdir -p "$root/etc/systemd/system/cloud-init-local.service.d"
cat > "$root/etc/systemd/system/cloud-init-local.service.d/90-guestforge-udev.conf" <<'UNIT'
[Unit]
After=systemd-udev-trigger.service

[Service]
ExecStartPre=-/usr/bin/udevadm settle --timeout=30
UNIT

# GRUB's later upgrades inside the VM must know where GRUB lives: grub-pc's disk; grub-efi-amd64's
# removable copy (EFI/BOOT, what a firmware without boot entries starts) and no NVRAM entries.
chroot "$root" debconf-set-selections <<'DEBCONF'
grub-pc grub-pc/install_devices multiselect /dev/vda
grub-efi-amd64 grub2/force_efi_extra_removable boolean true
grub-efi-amd64 grub2/update_nvram boolean false
DEBCONF

# The cluster mounts its own /opt; it stays empty in the image.
mkdir -p "$root/opt"
