/**
 * libvirt connection URIs from profiles and --connect. libvirt's own URI
 * parameters can run programs (`ext` transport, `command=`, `netcat=`) or
 * reach other sockets (`socket=`), and the build calls virsh with the URI at
 * its start: only the transports guestforge documents, without those.
 */

export const allowedTransports = ['qemu', 'qemu+ssh', 'qemu+tcp', 'qemu+tls', 'qemu+unix', 'qemu+libssh2'];
const refusedParams = ['command', 'netcat', 'socket', 'proxy', 'keyfile', 'known_hosts', 'known_hosts_verify', 'sshauth'];

/** Pure: what is wrong with a libvirt URI, or undefined. */
export function libvirtUriProblem(uri: string): string | undefined {
  const m = /^([a-z0-9+]+):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(uri);
  if (!m) return `not a libvirt URI: ${JSON.stringify(uri)} (for example qemu:///system or qemu+ssh://host/system)`;
  const [, transport, host, path, query] = m;
  if (!allowedTransports.includes(transport!)) return `transport ${transport} is not one guestforge uses (${allowedTransports.join(', ')})`;
  if (!/^([A-Za-z0-9._-]+@)?([A-Za-z0-9.-]*|\[[0-9a-fA-F:]+\])(:\d{1,5})?$/.test(host!)) return `host part ${JSON.stringify(host)} is not user@host:port`;
  if (path !== '/system' && path !== '/session') return `path ${JSON.stringify(path ?? '')} must be /system or /session`;
  const params = new URLSearchParams(query?.slice(1) ?? '');
  const bad = [...params.keys()].filter((k) => refusedParams.includes(k.toLowerCase()));
  if (bad.length) return `URI parameter ${bad.join(', ')} runs a program or picks a socket: not accepted (use an ~/.ssh/config entry for the host instead)`;
  return undefined;
}
