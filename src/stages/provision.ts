/**
 * Stage 2: boot the build VM on an overlay of the base with a NoCloud seed
 * made from the profile. The guest provisions itself, prints a nonce'd
 * result line on the serial console and powers off; only that line counts.
 */
import { redactUserData } from '../cloudinit/yaml.ts';
import { secretFilePaths } from '../cloudinit/userdata.ts';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { freePort } from '../util/net.ts';
import { join } from 'node:path';
import { buildSeedIso } from '../cloudinit/seed.ts';
import { parseDuration, parseSize } from '../profile/units.ts';
import { createOverlay } from '../vm/overlay.ts';
import { starterFor } from '../vm/backend.ts';
import { bootError, bootVm } from '../vm/watch.ts';
import { sha256Text } from '../util/fs.ts';
import { imageInfo } from '../vm/image.ts';
import type { Stage } from './types.ts';
import { removeWorkFiles } from './cleanup.ts';

/** Console lines worth showing next to the spinner while the build VM works. */
export function progressOf(line: string): string | undefined {
  const running = /guestforge: running (.*)$/.exec(line);
  if (running) return running[1];
  const ci = /cloud-init\[\d+\]: .*?(modules:\w+|Cloud-init v\. \S+ (?:running|finished)[^.]*)/.exec(line);
  if (ci) return `cloud-init ${ci[1]}`;
  if (/Setting up (\S+)/.test(line)) return line.replace(/^.*Setting up (\S+).*$/, 'apt: setting up $1');
  if (/\blogin:\s*$/.test(line)) return 'login prompt';
  return undefined;
}

export const provisionStage: Stage = {
  name: 'provision',
  title: 'build VM (cloud-init)',
  describe(profile) {
    const parts = [
      profile.packages.length ? `${profile.packages.length} packages` : undefined,
      profile.users.length ? `${profile.users.length} users` : undefined,
      profile.vrdma.enabled ? 'vRDMA packages, rdma_rxe kernel check, link unit' : undefined,
      profile.commands.length ? `${profile.commands.length} commands` : undefined,
    ].filter(Boolean);
    return `boot an overlay with a NoCloud seed (${parts.join(', ') || 'layout only'}), wait for the result line, timeout ${profile.build.timeout}`;
  },
  cache: {
    // The seed with a fixed nonce is everything the build VM is told (packages,
    // users, commands, vRDMA, the shipped scripts); the named parts say which changed.
    async inputs({ profile, driver }) {
      const hash = (value: unknown) => sha256Text(JSON.stringify(value)).slice(0, 16);
      const seed = await driver.buildSeed(profile, 'CACHEKEY');
      return {
        seed: hash([seed?.userData, seed?.metaData]),
        'disk.size': String(parseSize(profile.disk.size)),
        packages: hash(profile.packages),
        users: hash(profile.users),
        commands: hash(profile.commands),
        vrdma: hash(profile.vrdma),
        layout: hash(profile.layout),
      };
    },
  },
  async run(ctx, step) {
    const { profile } = ctx;
    const base = ctx.disk!;
    const want = parseSize(profile.disk.size);
    const have = (await imageInfo(base.path)).virtualSize;
    const overlay = await createOverlay(base, join(ctx.workDir, 'provision.qcow2'), want > have ? want : undefined);

    const seed = await ctx.driver.buildSeed(profile, ctx.nonce);
    if (!seed) throw new Error(`${ctx.driver.title} has no build VM seed`);
    await writeFile(join(ctx.logDir, 'build-user-data.yaml'), redactUserData(seed.userData, await secretFilePaths(profile, (await ctx.driver.buildOnlyFiles?.(profile)) ?? [])), { mode: 0o600 });
    // --on-error keep|ask: the VM can be left running for its admin (qemu backend: a console socket, a process of its own).
    const keepable = (ctx.options.onError ?? 'cleanup') !== 'cleanup' && ctx.backend.kind === 'qemu';
    const password = keepable ? randomBytes(12).toString('base64url') : undefined;
    const sshPort = keepable && ctx.options.debugSshKey ? await freePort() : undefined;
    const iso = join(ctx.workDir, 'seed.iso');
    await buildSeedIso(join(ctx.workDir, 'seed'), {
      ...seed,
      ...(keepable ? {
        extra: {
          'guestforge-debug-password': password!,
          ...(ctx.options.debugSshKey ? { 'guestforge-debug-ssh-key': `${ctx.options.debugSshKey}\n` } : {}),
        },
      } : {}),
    }, iso);

    step.update('booting');
    const serialLog = join(ctx.logDir, 'build-console.log');
    const said = new Set<string>();
    const outcome = await bootVm(
      {
        disk: overlay.path,
        diskFormat: 'qcow2',
        seedIso: iso,
        memoryMiB: Math.floor(parseSize(profile.build.memory) / 1024 / 1024),
        cpus: profile.build.cpus,
        accel: ctx.accel,
        serialLog,
        qmpSocket: join(ctx.workDir, 'qmp.sock'),
        unsafeCache: true,
        ...(keepable ? { consoleSocket: join(ctx.workDir, 'console.sock') } : {}),
        ...(sshPort ? { hostForward: { hostPort: sshPort, guestPort: 22 } } : {}),
      },
      {
        label: 'build VM',
        // The seed's bootcmd says so on the console; a login prompt without it for a minute: cloud-init never ran.
        startedWithinMs: 60_000,
        nonce: ctx.nonce,
        keepOnFailure: keepable,
        timeoutMs: parseDuration(profile.build.timeout),
        stallMs: parseDuration(profile.build.stallTimeout),
        log: ctx.log,
        signal: ctx.signal,
        onLine: (line) => {
          ctx.log.detail(`console: ${line}`);
          // Notes the guest scripts want the user to see (e.g. vRDMA kernel decisions).
          const note = /guestforge: (vRDMA: .*)$/.exec(line)?.[1]?.trim();
          if (note && !said.has(note)) {
            said.add(note);
            ctx.log.info(`build VM: ${note}`);
          }
          const progress = progressOf(line);
          if (progress) step.update(progress);
        },
      },
      starterFor(ctx.backend, { namePrefix: `${profile.name}-provision`, diskIsResult: true, log: ctx.log }),
    );
    for (const warning of outcome.warnings) {
      ctx.log.warn(`build VM: ${warning}`);
      ctx.warnings.push(`build VM: ${warning}`);
    }
    if (!outcome.ok) {
      if (keepable) ctx.failed = { disk: overlay, ...(outcome.kept ? { vm: outcome.kept } : {}), ...(outcome.kept?.loginOpened ? { password: password! } : {}) };
      throw bootError(outcome, 'build VM');
    }
    ctx.disk = overlay;
    step.update(`result after ${((outcome.resultMs ?? 0) / 1000).toFixed(0)}s`);
  },
  async cleanup(ctx, end) {
    // The VM itself is stopped by run, or by the pipeline when a failed build is not kept.
    await removeWorkFiles(ctx, end, 'provision.qcow2', 'seed.iso', 'seed', 'qmp.sock', 'console.sock');
  },
};
