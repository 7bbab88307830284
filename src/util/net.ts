import { readdir, readFile, readlink } from 'node:fs/promises';
import { connect, createServer } from 'node:net';

/** A TCP port on the loopback that nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(2000, () => done(false));
  });
}

/**
 * Whether process `pid` holds the socket listening on 127.0.0.1:port: a
 * server we started is ready only when the listener is its own, not another
 * local user's who took the port first (/proc/net/tcp's inode against the
 * process's descriptors).
 */
export async function listenedBy(pid: number, port: number): Promise<boolean> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  // ganesha listens on an IPv6 socket bound to ::ffff:127.0.0.1 (seen here), others on IPv4.
  const addresses = ['0100007F', '00000000', '0000000000000000FFFF00000100007F', '00000000000000000000000000000000'].map((a) => `${a}:${hexPort}`);
  const tables = await Promise.all(['/proc/net/tcp', '/proc/net/tcp6'].map((t) => readFile(t, 'utf8').catch(() => '')));
  const inodes = new Set(tables.flatMap((t) => t.split('\n').slice(1)).map((l) => l.trim().split(/\s+/))
    .filter((f) => addresses.includes(f[1] ?? '') && f[3] === '0A').map((f) => `socket:[${f[9]}]`));
  if (inodes.size === 0) return false;
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    if (inodes.has(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))) return true;
  }
  return false;
}
