/**
 * The libvirt backend: the build and smoke VMs as libvirt domains, driven
 * through virsh. define → start → poll domstate until shut off → destroy and
 * undefine, on every path (the watch loop disposes in a finally).
 *
 * A local URI (no host part) uses the files in place; qemu runs as the
 * invoking user for that domain (a static DAC label), since the disks live
 * in that user's cache. A remote URI shares no filesystem: the backing disk,
 * the seed and an empty console file travel as volumes of a storage pool,
 * the overlay is made there on the uploaded backing disk, the console is
 * copied back while the VM runs (vol-download --offset), the overlay comes
 * back when the VM's disk is the result, and every volume is deleted.
 */
import { imageInfo } from './image.ts';
import { libvirtUriProblem } from './uri.ts';
import { freshConsoleLog } from './serial.ts';
import { appendFile, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UsageError, UserError } from '../errors.ts';
import { run, ToolMissingError, type RunResult } from '../exec/run.ts';
import type { Logger } from '../log.ts';
import { nonce } from '../util/fs.ts';
import { domainXml, type DomainDisk, type DomainFields } from './domain-xml.ts';
import type { VmSpec } from './qemu-args.ts';
import type { VmRunner, VmStarter } from './runner.ts';
import { budgetFromEnv, defaultUri, transferBudget, virsh, type VirshOptions } from './virsh.ts';

export interface LibvirtTarget {
  /** undefined: the local system daemon (qemu:///system). */
  uri?: string;
  /** The storage pool that carries disks to a remote host. */
  pool: string;
}

export { defaultUri, virsh };
export const defaultPool = 'guestforge';
const defaultPoolPath = '/var/lib/libvirt/images/guestforge';

export function isRemote(uri: string | undefined): boolean {
  if (!uri) return false;
  const problem = libvirtUriProblem(uri);
  if (problem) throw new UsageError(`libvirt URI refused: ${problem}`, { hint: 'for example qemu:///system, qemu+ssh://host/system, qemu+tcp://host/system' });
  return new URL(uri).hostname !== '';
}

/** The pool exists and runs (a dir pool under /var/lib/libvirt/images is made if missing). */
export async function ensurePool(target: LibvirtTarget): Promise<void> {
  const info = await virsh(target.uri, ['pool-info', target.pool], { allowFailure: true });
  if (info.exitCode !== 0) {
    const made = await virsh(target.uri, ['pool-define-as', target.pool, 'dir', '--target', target.pool === defaultPool ? defaultPoolPath : `/var/lib/libvirt/images/${target.pool}`], { allowFailure: true });
    // Another build may have defined it a moment ago.
    if (made.exitCode !== 0 && (await virsh(target.uri, ['pool-info', target.pool], { allowFailure: true })).exitCode !== 0) {
      throw new UserError(`cannot create the storage pool ${target.pool} on ${target.uri}: ${made.stderr.trim()}`, {
        hint: 'create a dir pool yourself (virsh pool-define-as NAME dir --target PATH; pool-build; pool-start) and pass --pool NAME',
      });
    }
    await virsh(target.uri, ['pool-build', target.pool], { allowFailure: true });
  }
  if (!/^State:\s+running/m.test((await virsh(target.uri, ['pool-info', target.pool])).stdout)) {
    await virsh(target.uri, ['pool-start', target.pool], { allowFailure: true });
  }
  await virsh(target.uri, ['pool-refresh', target.pool], { allowFailure: true });
}


type Call = (args: string[], options?: VirshOptions) => Promise<RunResult>;

/** Pure: the names `virsh -q vol-list` lists (its first column) that start with `prefix`. */
function volumeNames(listing: string, prefix: string): string[] {
  return listing.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n.startsWith(prefix));
}

/**
 * Volumes made for one domain on a remote host. Every one is named
 * `<domain>-…` and noted before it is asked for, so a vol-create cut short
 * that still lands is found and deleted by `removeAll` too.
 */
class RemoteVolumes {
  private readonly asked = new Set<string>();
  constructor(private readonly target: LibvirtTarget, private readonly prefix: string, private readonly call: Call) {}

  async upload(name: string, file: string): Promise<string> {
    const bytes = (await stat(file)).size;
    await this.create(name, [String(Math.max(bytes, 1)), '--format', 'raw']);
    await this.call(['vol-upload', '--pool', this.target.pool, name, file], { budget: transferBudget });
    return this.path(name);
  }

  async overlay(name: string, backing: string, virtualSize: number): Promise<string> {
    await this.create(name, [String(virtualSize), '--format', 'qcow2', '--backing-vol', backing, '--backing-vol-format', 'qcow2']);
    return this.path(name);
  }

  async empty(name: string): Promise<string> {
    await this.create(name, ['1', '--format', 'raw']);
    return this.path(name);
  }

  private async create(name: string, args: string[]): Promise<void> {
    this.asked.add(name);
    await this.call(['vol-create-as', this.target.pool, name, ...args]);
  }

  async path(name: string): Promise<string> {
    return (await this.call(['vol-path', '--pool', this.target.pool, name])).stdout.trim();
  }

  async download(name: string, file: string, offset = 0): Promise<void> {
    await this.call(['vol-download', '--pool', this.target.pool, name, file, ...(offset ? ['--offset', String(offset)] : [])], { budget: transferBudget });
  }

  /** Deletes every volume asked for, then any other of this domain's that the pool lists; throws naming what is left. */
  async removeAll(): Promise<void> {
    if (this.asked.size === 0) return;
    // One slow delete (a VirshTimeout) does not keep the others from being tried.
    const remove = (name: string) => this.call(['vol-delete', '--pool', this.target.pool, name], { allowFailure: true }).catch(() => undefined);
    for (const name of this.asked) await remove(name);
    const ours = async () => volumeNames((await this.call(['vol-list', '--pool', this.target.pool])).stdout, `${this.prefix}-`);
    for (const name of await ours()) await remove(name);
    const still = await ours();
    if (still.length > 0) throw new Error(`volumes left in pool ${this.target.pool}: ${still.join(', ')}`);
    this.asked.clear();
  }
}

/**
 * Destroys and undefines until the daemon no longer lists the domain: a
 * define or start cut short (a budget ran out, a signal ended virsh) may
 * still be finished by libvirtd after we ask, and undefine fails while a
 * start holds the domain's job.
 */
async function removeDomain(call: Call, name: string): Promise<void> {
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt += 1) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 2000));
    // --nvram: a UEFI domain's vars file goes with it (libvirt refuses to undefine such a domain without it; a BIOS one has none).
    for (const verb of [['destroy'], ['undefine', '--nvram']]) {
      const r = await call([...verb, name], { allowFailure: true }).catch((error: unknown) => ({ exitCode: -1, stderr: (error as Error).message }));
      if (r.exitCode !== 0 && !notFound(r.stderr)) lastError = `virsh ${verb[0]}: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`;
    }
    const listed = await call(['list', '--all', '--name']);
    if (!listed.stdout.split('\n').some((l) => l.trim() === name)) return;
  }
  throw new Error(`the domain ${name} is still defined${lastError ? ` (${lastError})` : ''}`);
}

function notFound(stderr: string): boolean {
  return /failed to get domain|Domain not found|no domain with matching/i.test(stderr);
}

export interface LibvirtStartOptions {
  /** guestforge-<profile>-<stage>-<nonce>: the prefix, without the nonce. */
  namePrefix: string;
  /** The disk's new content is the result (the build VM): a remote run copies it back. */
  diskIsResult: boolean;
  /** Where a slow daemon is said (a virsh call past its budget while libvirtd still answers). */
  log?: Logger;
}

function domainName(prefix: string): string {
  return `guestforge-${prefix}`.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 60) + `-${nonce(3)}`;
}

/**
 * Runs a VM as a libvirt domain. Everything it makes (the domain, the pool's
 * volumes, scratch files) is undone by one `dispose`, reached on every path:
 * from here when defining or starting fails, times out or is interrupted, and
 * from bootVm's finally once it runs.
 */
export function libvirtStarter(target: LibvirtTarget, options: LibvirtStartOptions): VmStarter {
  return async (spec: VmSpec, label: string): Promise<VmRunner> => {
    await freshConsoleLog(spec.serialLog);
    if (spec.hostForward) {
      throw new UserError(`${label}: the libvirt backend has no host port forwarding here`, { hint: 'use --backend qemu for OSv composes' });
    }
    const uri = target.uri ?? defaultUri;
    const name = domainName(options.namePrefix);
    const remote = isRemote(target.uri);
    // Read once, before anything is made: a bad GUESTFORGE_VIRSH_BUDGET is a usage error here, not every clean-up call's.
    const budget = budgetFromEnv();
    const call: Call = (args, o = {}) => virsh(target.uri, args, { budget, onSlow: (m) => options.log?.warn(`${label}: ${m}`), ...o });
    const volumes = new RemoteVolumes(target, name, call);
    const workDir = dirname(spec.disk);
    const scratch: string[] = [];
    let consoleBytes = 0;
    const consoleVolume = `${name}-console.log`;
    const diskVolume = `${name}-disk.qcow2`;
    const original = await imageInfo(spec.disk);
    let defineAsked = false;

    let disposed = false;
    const dispose = async (ended: { ok: boolean } = { ok: false }) => {
      if (disposed) return;
      disposed = true;
      const problems: string[] = [];
      const attempt = async (fn: () => Promise<unknown>) => {
        try {
          await fn();
        } catch (error) {
          problems.push((error as Error).message);
        }
      };
      if (defineAsked) await attempt(() => removeDomain(call, name));
      // The overlay made there comes back and is pointed at our backing file again; a failed VM's disk is not wanted.
      if (remote && options.diskIsResult && ended.ok && problems.length === 0) {
        await attempt(async () => {
          const back = join(workDir, `${name}-result.qcow2`);
          scratch.push(back);
          await volumes.download(diskVolume, back);
          await run(['qemu-img', 'rebase', '-u', '-f', 'qcow2', '-b', original.backing ?? '', '-F', original.backingFormat ?? 'qcow2', back]);
          await rename(back, spec.disk);
        });
      }
      if (remote) await attempt(() => volumes.removeAll());
      for (const f of scratch) await rm(f, { force: true });
      if (problems.length > 0) {
        throw new UserError(`${label}: libvirt at ${uri} kept what guestforge made for ${name}: ${problems.join('; ')}`, {
          hint: `remove it by hand: virsh -c ${uri} destroy ${name}; virsh -c ${uri} undefine --nvram ${name}${remote ? `; virsh -c ${uri} vol-list --pool ${target.pool} | grep ${name}- (then vol-delete each)` : ''}`,
        });
      }
    };
    const disposeAfter = async (error: unknown): Promise<never> => {
      await dispose().catch((e: unknown) => options.log?.warn(`${(e as Error).message}\n${(e as UserError).hint ?? ''}`.trim()));
      throw error;
    };

    try {
      let fields: DomainFields;
      if (remote) {
        await ensurePool(target);
        let diskPath: string;
        if (original.backing) {
          let backing = original.backing;
          // The pool gets one standalone file: flatten a backing chain first.
          if ((await imageInfo(backing)).backing) {
            const flat = join(workDir, `${name}-flat.qcow2`);
            scratch.push(flat);
            await run(['qemu-img', 'convert', '-O', 'qcow2', backing, flat], { timeoutMs: 60 * 60_000 });
            backing = flat;
          }
          await volumes.upload(`${name}-base.qcow2`, backing);
          diskPath = await volumes.overlay(diskVolume, `${name}-base.qcow2`, original.virtualSize);
        } else {
          diskPath = await volumes.upload(diskVolume, spec.disk);
        }
        const disks: DomainDisk[] = [{ path: diskPath, format: original.backing ? 'qcow2' : spec.diskFormat }];
        if (spec.seedIso) disks.push({ path: await volumes.upload(`${name}-seed.iso`, spec.seedIso), format: 'raw', cdrom: true });
        fields = baseFields(spec, name, label, disks, await volumes.empty(consoleVolume));
      } else {
        const disks: DomainDisk[] = [{ path: spec.disk, format: spec.diskFormat }];
        if (spec.seedIso) disks.push({ path: spec.seedIso, format: 'raw', cdrom: true });
        fields = { ...baseFields(spec, name, label, disks, spec.serialLog), runAs: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } };
      }
      const xmlFile = join(workDir, `${name}.xml`);
      scratch.push(xmlFile);
      await writeFile(xmlFile, await domainXml(fields));
      defineAsked = true;
      await call(['define', xmlFile]);
      const started = await call(['start', name], { allowFailure: true });
      if (started.exitCode !== 0) {
        throw new UserError(`${label}: virsh start ${name} failed: ${started.stderr.trim().split('\n').slice(-2).join(' | ')}`, {
          hint: startFailureHint(started.stderr, uri),
        });
      }
    } catch (error) {
      return disposeAfter(error);
    }

    let stoppedAt: string | undefined;
    const state = async (): Promise<string> => {
      const r = await call(['domstate', '--reason', name], { allowFailure: true });
      if (r.exitCode === 0) return r.stdout.trim();
      // Any other failure says nothing of the domain: the watch goes on, and its timeouts still hold.
      return notFound(r.stderr) ? 'gone' : 'unknown';
    };
    return {
      argv: ['virsh', '-c', uri, 'start', name],
      wait: (ms) => new Promise((r) => setTimeout(r, remote ? Math.max(ms, 2000) : ms)),
      stopped: async () => {
        const s = await state();
        if (/^(shut off|crashed|gone)/.test(s)) stoppedAt ??= s;
        return stoppedAt !== undefined;
      },
      powerdown: async () => {
        await call(['shutdown', name], { allowFailure: true });
      },
      stop: async () => {
        if (stoppedAt) return;
        await call(['destroy', name], { allowFailure: true });
        stoppedAt = 'destroyed';
      },
      ...(remote
        ? {
            sync: async () => {
              const chunk = join(workDir, `${name}-console.part`);
              await volumes.download(consoleVolume, chunk, consoleBytes).catch(() => undefined);
              const data = await readFile(chunk).catch(() => Buffer.alloc(0));
              await rm(chunk, { force: true });
              if (data.length > 0) {
                await appendFile(spec.serialLog, data);
                consoleBytes += data.length;
              }
            },
          }
        : {}),
      failure: async () => (stoppedAt && /crashed/.test(stoppedAt) ? `the domain ${name} ${stoppedAt}` : undefined),
      dispose,
    };
  };
}

function baseFields(spec: VmSpec, name: string, label: string, disks: DomainDisk[], serialPath: string): DomainFields {
  return {
    name, label, accel: spec.accel, memoryMiB: spec.memoryMiB, cpus: spec.cpus, disks, serialPath,
    unsafeCache: spec.unsafeCache, allowReboot: spec.allowReboot ?? false,
    machine: spec.machine ?? (spec.uefi ? 'q35' : 'pc'),
    // libvirt picks OVMF itself from the firmware descriptors (Debian's ovmf ships them in /usr/share/qemu/firmware) and makes the domain's own vars file.
    ...(spec.uefi ? { uefi: { secure: spec.uefi.secure } } : {}),
  };
}

/** Domains and volumes whose names start with this prefix (tests and clean-up checks). */
export async function leftovers(target: LibvirtTarget, prefix = 'guestforge-'): Promise<{ domains: string[]; volumes: string[] }> {
  const domains = (await virsh(target.uri, ['list', '--all', '--name'], { allowFailure: true })).stdout.split('\n').map((s) => s.trim()).filter((s) => s.startsWith(prefix));
  const vols = await virsh(target.uri, ['vol-list', '--pool', target.pool], { allowFailure: true });
  const volumes = vols.exitCode === 0 ? volumeNames(vols.stdout, prefix) : [];
  return { domains, volumes };
}

/** Pure: the hint for a failed `virsh start`, naming the daemon that is missing when libvirt says which. */
export function startFailureHint(stderr: string, uri: string): string {
  if (/virtlogd-sock|virtlogd/.test(stderr)) return `virtlogd is not running on ${uri}'s host (libvirtd needs it for the console log): start it with virtlogd -d (or systemctl start virtlogd)`;
  if (/virtlockd/.test(stderr)) return `virtlockd is not running on ${uri}'s host: start it with virtlockd -d`;
  return `connection ${uri}; check the daemon runs (libvirtd -d) and can run qemu domains (virsh domcapabilities)`;
}

/** Whether the local libvirt daemon answers, for doctor; not a problem when it does not (the qemu backend needs none). */
export async function libvirtDaemonState(): Promise<string> {
  const r = await virsh(defaultUri, ['version'], { allowFailure: true, budget: { callMs: 10_000, pingMs: 5_000, ceilingMs: 15_000 } }).catch((error: unknown) => error as Error);
  if (r instanceof ToolMissingError) return 'virsh not found (apt-get install libvirt-clients)';
  if (r instanceof Error) return `${defaultUri} does not answer in 15s: ${r.message}`;
  const hypervisor = /Running hypervisor: (.*)/.exec(r.stdout)?.[1];
  if (r.exitCode !== 0) return `${defaultUri} does not answer: start the daemons (virtlogd -d; libvirtd -d, or systemctl start libvirtd)`;
  const virtlogd = await stat('/run/libvirt/virtlogd-sock').then(() => true, () => false);
  return `${defaultUri} answers (${hypervisor ?? 'hypervisor unknown'})${virtlogd ? '; virtlogd runs' : '; but virtlogd does not run, so no domain can start: virtlogd -d'}`;
}
