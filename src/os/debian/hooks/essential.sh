#!/bin/sh
# mmdebstrap essential hook: runs before the kernel is installed, so that the
# initramfs is built knowing the root filesystem and without floppy probing.
set -eu
root=$1
shift
# The root's line; its fsck pass is 1 unless a trim says otherwise (root-fsck-pass=0 below).
root_line() { echo "LABEL=rootfs / ext4 defaults,errors=remount-ro 0 $1" > "$root/etc/fstab"; }
root_line 1
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/modprobe.d"
# Without it the initramfs has no fsck.ext4.
echo 'FSTYPE=ext4' > "$root/etc/initramfs-tools/conf.d/guestforge-fstype"
# The pc machine has a floppy controller; probing it costs ~20 s under TCG.
echo 'blacklist floppy' > "$root/etc/modprobe.d/guestforge-floppy.conf"

# Boot trims made at bootstrap (src/policy/boot.ts), one word each after the root.
for trim in "$@"; do
  case $trim in
    initramfs-modules=*)
      # Only what finds the root disk, set before the kernel's postinst makes the first initramfs.
      # (Not /etc/initramfs-tools/modules: that is a conffile of initramfs-tools, not yet installed.)
      echo 'MODULES=list' > "$root/etc/initramfs-tools/conf.d/guestforge-modules"
      mkdir -p "$root/usr/share/initramfs-tools/modules.d"
      echo "${trim#initramfs-modules=}" | tr ',' '\n' > "$root/usr/share/initramfs-tools/modules.d/guestforge"
      ;;
    grub-timeout=*)
      # After customize.sh's 90-guestforge.cfg (GRUB_TIMEOUT=1), so it wins; update-grub reads both.
      mkdir -p "$root/etc/default/grub.d"
      echo "GRUB_TIMEOUT=${trim#grub-timeout=}" > "$root/etc/default/grub.d/91-guestforge-timeout.cfg"
      ;;
    root-fsck-pass=0)
      # No systemd-fsck-root.service at all (fsck.mode=skip still starts it, to do nothing).
      root_line 0
      ;;
    kernel-arg=*)
      # One word more on the kernel command line, after customize.sh's 90-guestforge.cfg.
      arg=${trim#kernel-arg=}
      case $arg in *[!a-z0-9_.=-]*|'') echo "essential.sh: bad kernel argument $arg" >&2; exit 1 ;; esac
      mkdir -p "$root/etc/default/grub.d"
      echo "GRUB_CMDLINE_LINUX_DEFAULT=\"\$GRUB_CMDLINE_LINUX_DEFAULT $arg\"" >> "$root/etc/default/grub.d/92-guestforge-cmdline.cfg"
      ;;
    stub-deb=*)
      # A stub package (trim ucx-no-rocm) installed now, so that apt, resolving the packages to
      # include next, finds what it Provides already there.
      deb=${trim#stub-deb=}
      case $deb in /*.deb) ;; *) echo "essential.sh: bad stub package path $deb" >&2; exit 1 ;; esac
      inside=$(mktemp -p "$root/tmp" guestforge-stub.XXXXXX.deb)
      cp "$deb" "$inside"
      chroot "$root" dpkg -i "/tmp/${inside##*/}" > /dev/null
      rm -f "$inside"
      ;;
    *) echo "essential.sh: unknown trim $trim" >&2; exit 1 ;;
  esac
done
