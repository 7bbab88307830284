/**
 * What a rehearsed guest may reach besides its NFS server and the SSH the
 * rehearsal logs in through: the package mirror, for the cluster's boot-time
 * `packages`. The VMs' user network is restricted (slirp `restrict=on`: no
 * host services at 10.0.2.2, nothing routed out); each mirror host gets an
 * address of its own on that network, written into the guest's /etc/hosts,
 * and slirp hands every connection to it to socat, which connects to the
 * mirror from the host. Pure.
 */
import { redactUrl } from '../util/url.ts';

export interface MirrorForward {
  /** The mirror's host name, as the guest's apt sources name it. */
  host: string;
  /** Where the guest finds it on the user network. */
  address: string;
  port: number;
}

/** The first address handed to a mirror (the NFS server is 10.0.2.100). */
const firstAddress = 101;
const maxMirrors = 20;

/** Pure: the forwards for these mirror URLs, and the URLs that cannot be forwarded (with why). */
export function mirrorForwards(urls: readonly string[]): { forwards: MirrorForward[]; skipped: string[] } {
  const forwards: MirrorForward[] = [];
  const skipped: string[] = [];
  const addressOf = new Map<string, string>();
  for (const url of urls) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      skipped.push(`${redactUrl(url)}: not a URL`);
      continue;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      if (u.protocol !== 'file:' && u.protocol !== 'cdrom:') skipped.push(`${redactUrl(url)}: only http and https mirrors are forwarded`);
      continue;
    }
    const host = u.hostname.toLowerCase();
    // A name the guest resolves through /etc/hosts; an address would have to be routed, which the restricted network does not do.
    if (!/^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(host)) {
      skipped.push(`${redactUrl(url)}: a mirror named by address, not by name, cannot be forwarded`);
      continue;
    }
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    let address = addressOf.get(host);
    if (!address) {
      if (addressOf.size >= maxMirrors) {
        skipped.push(`${redactUrl(url)}: more than ${maxMirrors} mirror hosts`);
        continue;
      }
      address = `10.0.2.${firstAddress + addressOf.size}`;
      addressOf.set(host, address);
    }
    if (!forwards.some((f) => f.host === host && f.port === port)) forwards.push({ host, address, port });
  }
  return { forwards, skipped };
}

/** Pure: the guest's /etc/hosts lines for the forwarded mirrors. */
export function mirrorHostsLines(forwards: readonly MirrorForward[]): string {
  const seen = new Map<string, string>();
  for (const f of forwards) seen.set(f.host, f.address);
  return [...seen].map(([host, address]) => `${address} ${host}\n`).join('');
}
