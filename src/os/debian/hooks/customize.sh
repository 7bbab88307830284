#!/bin/sh
# mmdebstrap customize hook: the guest-side settings every guestforge Debian
# base has. Runs with the finished chroot as $1.
set -eu
root=$1

# cloud-init's locale module fails without a locale, and status becomes error.
echo 'LANG=C.UTF-8' > "$root/etc/default/locale"

# GRUB on the serial console, with a short timeout.
mkdir -p "$root/etc/default/grub.d"
cat > "$root/etc/default/grub.d/90-guestforge.cfg" <<'GRUB'
GRUB_TIMEOUT=1
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

# grub-pc's later upgrades inside the VM must know where GRUB lives.
echo 'grub-pc grub-pc/install_devices multiselect /dev/vda' | chroot "$root" debconf-set-selections

# The cluster mounts its own /opt; it stays empty in the image.
mkdir -p "$root/opt"
