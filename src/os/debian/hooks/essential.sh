#!/bin/sh
# mmdebstrap essential hook: runs before the kernel is installed, so that the
# initramfs is built knowing the root filesystem and without floppy probing.
set -eu
root=$1
echo 'LABEL=rootfs / ext4 defaults,errors=remount-ro 0 1' > "$root/etc/fstab"
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/modprobe.d"
# Without it the initramfs has no fsck.ext4.
echo 'FSTYPE=ext4' > "$root/etc/initramfs-tools/conf.d/guestforge-fstype"
# The pc machine has a floppy controller; probing it costs ~20 s under TCG.
echo 'blacklist floppy' > "$root/etc/modprobe.d/guestforge-floppy.conf"
