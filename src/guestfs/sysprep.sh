# guestforge offline clean-up, run in the guest's root by one guestfish `sh`
# call (virt-sysprep's operations, the ones that matter for batch VMs).
# No "|| true": rm -f of a missing file succeeds already, so a failure here
# (read-only, immutable) is real and stops the build with its message.
set -e
# cloud-init clean: the cluster boots every VM with the same instance-id, so
# left-over instance state would silently skip per-instance modules.
rm -rf /var/lib/cloud/instances /var/lib/cloud/instance /var/lib/cloud/seed \
       /var/lib/cloud/sem /var/lib/cloud/data /var/lib/cloud/handlers
# Identity: each VM gets its own machine-id and host keys at first boot.
if [ -e /etc/machine-id ]; then : > /etc/machine-id; fi
if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then rm -f /var/lib/dbus/machine-id; fi
rm -f /etc/ssh/ssh_host_* /var/lib/systemd/random-seed /var/lib/systemd/credential.secret
rm -f /var/lib/dhcp/*.leases /var/lib/NetworkManager/*.lease* /var/lib/systemd/network/*
# The network files cloud-init wrote for the build VM's own NIC (cloud-init 24+ writes networkd's
# into /etc, not /run): each VM's first boot renders its own from its seed.
rm -f /etc/systemd/network/10-cloud-init-*.network /etc/NetworkManager/system-connections/cloud-init-*.nmconnection
# Package caches and lists (apt, dnf): large and stale by the time a job runs.
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/cache/dnf/* /var/cache/yum/*
mkdir -p /var/lib/apt/lists/partial
# Logs emptied (kept as files: some daemons will not create them), journals removed.
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -exec truncate -s 0 {} +
rm -rf /var/log/journal/*
# Shell histories and build leftovers.
rm -f /root/.bash_history /root/.lesshst /root/.viminfo /home/*/.bash_history /home/*/.lesshst
rm -rf /var/lib/guestforge /tmp/* /tmp/.[!.]* /var/tmp/*
echo sysprep-done
