/**
 * libvirt connection URIs from profiles and --connect. libvirt's own URI
 * parameters can run programs (`ext` transport, `command=`, `netcat=`) or
 * reach other sockets (`socket=`), and the build calls virsh with the URI at
 * its start: only the transports guestforge documents, without those.
 */

export const allowedTransports = ['qemu', 'qemu+ssh', 'qemu+tcp', 'qemu+tls', 'qemu+unix', 'qemu+libssh2'];
/** The URI parameters accepted; anything else (command=, netcat=, socket=, keyfile=…) is refused. */
const allowedParams = ['no_verify', 'no_tty', 'pkipath', 'mode', 'tls_priority', 'name'];

/** Pure: what is wrong with a libvirt URI, or undefined. */
export function libvirtUriProblem(uri: string): string | undefined {
  const m = /^([a-z0-9+]+):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(uri);
  if (!m) return `not a libvirt URI: ${JSON.stringify(uri)} (for example qemu:///system or qemu+ssh://host/system)`;
  const [, transport, host, path, query] = m;
  if (!allowedTransports.includes(transport!)) return `transport ${transport} is not one guestforge uses (${allowedTransports.join(', ')})`;
  if (!/^([A-Za-z0-9][A-Za-z0-9._-]*@)?([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9a-fA-F:]+\])?(:\d{1,5})?$/.test(host!)) return `host part ${JSON.stringify(host)} is not user@host:port`;
  if (path !== '/system' && path !== '/session') return `path ${JSON.stringify(path ?? '')} must be /system or /session`;
  // libvirt also splits parameters on ';': read them as it does.
  const decode = (text: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      return undefined;
    }
  };
  const raw = (query?.slice(1) ?? '').split(/[&;]/).filter(Boolean).map((p) => p.split('=')[0] ?? '');
  const malformed = raw.find((k) => decode(k) === undefined);
  if (malformed !== undefined) return `URI parameter ${JSON.stringify(malformed)} is not valid percent-encoding`;
  const names = raw.map((k) => decode(k)!.toLowerCase());
  const bad = names.filter((k) => !allowedParams.includes(k));
  if (bad.length) return `URI parameter ${bad.join(', ')} is not accepted (command=, netcat=, socket= and the like run programs or pick sockets; use an ~/.ssh/config entry for the host instead)`;
  return undefined;
}
