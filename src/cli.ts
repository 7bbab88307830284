/**
 * Entry point: picks the command, loads it lazily (so --help and validate
 * start fast), and is the one place where errors are caught and turned into
 * messages and exit codes.
 */
import { errorMessage, ExitCode, UserError } from './errors.ts';

export interface CommandModule {
  run(args: string[], global: GlobalOptions): Promise<number>;
}

export interface GlobalOptions {
  debug: boolean;
}

interface CommandEntry {
  summary: string;
  usage: string;
  load: () => Promise<CommandModule>;
}

const commands: Record<string, CommandEntry> = {
  build: {
    summary: 'build an image from a profile: base, build VM, clean-up, apps, verify, compress, smoke boot',
    usage: 'build <profile.yaml> [-o out/] [--no-smoke] [--smoke-firmware bios,uefi,uefi-secure] [--junit f.xml] [--verbose] [--keep-work] [--no-cache] [--accel auto|kvm|tcg] [--backend qemu|libvirt] [--connect URI] [--json-events] [--sign-key KEY] [--on-error cleanup|keep|ask] [--debug-ssh-key KEY.pub] [--break before:STAGE|after:STAGE] [--package-only (OSv)] [--allow-host-path DIR]...',
    load: () => import('./commands/build.ts'),
  },
  builds: {
    summary: 'list the builds kept for a look inside (build --on-error keep, --break): id, profile, stage, since, how to reach them',
    usage: 'builds [--json]',
    load: () => import('./commands/debug.ts').then((m) => ({ run: m.builds })),
  },
  console: {
    summary: "attach to a kept build VM's serial console (read/write; Ctrl-] detaches)",
    usage: 'console <build-id>',
    load: () => import('./commands/debug.ts').then((m) => ({ run: m.consoleCommand })),
  },
  shell: {
    summary: "guestfish on a kept build's disk: read-write between stages, read-only while its VM runs",
    usage: 'shell <build-id>',
    load: () => import('./commands/debug.ts').then((m) => ({ run: m.shell })),
  },
  resume: {
    summary: 'go on with a kept build from the stage that failed or the --break point, with the profile as it is now (-o, --sign-key, --allow-host-path and the backend as build takes them: the kept record holds none)',
    usage: 'resume <build-id> [-o out/] [--no-smoke] [--sign-key KEY] [--accel auto|kvm|tcg] [--backend qemu|libvirt] [--connect URI] [--pool P] [--on-error keep|cleanup|ask] [--debug-ssh-key KEY.pub] [--break before:STAGE|after:STAGE] [--verbose] [--allow-host-path DIR]...',
    load: () => import('./commands/debug.ts').then((m) => ({ run: m.resume })),
  },
  discard: {
    summary: "remove a kept build: stop its VM, delete its work folder",
    usage: 'discard <build-id>',
    load: () => import('./commands/debug.ts').then((m) => ({ run: m.discard })),
  },
  smoke: {
    summary: 'boot an image with a fresh NoCloud seed and check it from inside, under each firmware it claims (an OSv image: judge its console)',
    usage: 'smoke <image> [--profile p.yaml] [--firmware bios|uefi|uefi-secure]... [--require vrdma] [--junit f.xml] [--json] [--timeout 10m] [--log-dir d] [--allow-backing] [--verbose] [--allow-host-path DIR]... [--expect REGEX] [--stays-up] (the last two: OSv)',
    load: () => import('./commands/smoke.ts'),
  },
  rehearse: {
    summary: 'boot an image as a cluster node does (cloud-localds seed, NFS mounts) and run a job in it as its owner over SSH',
    usage: 'rehearse <image> [--cluster clusters/vtorque.yaml] [--nodes N] [--job CMD] [--expect REGEX] [--require vrdma] [--profile p.yaml] [--junit f.xml] [--json] [--accel auto|kvm|tcg] [--log-dir d] [--allow-backing] [--verbose] [--allow-host-path DIR]...',
    load: () => import('./commands/rehearse.ts'),
  },
  verify: {
    summary: "check any image offline against the cluster's guest requirements",
    usage: 'verify <image> [--profile p.yaml] [--firmware bios|uefi|hybrid] [--require vrdma|no-rocm|secure-boot] [--json] [--junit f.xml] [--allow-backing] [--explain RULE] [--allow-host-path DIR]... | verify --explain RULE',
    load: () => import('./commands/verify.ts'),
  },
  sign: {
    summary: 'sign an output folder: a detached gpg signature of SHA256SUMS, which lists the images, manifests, SBOMs and provenance',
    usage: 'sign <out/> --key KEY',
    load: () => import('./commands/sign.ts'),
  },
  'verify-signature': {
    summary: 'check an output folder\'s SHA256SUMS.asc against a public key, then every file SHA256SUMS lists',
    usage: 'verify-signature <out/> --pubkey key.asc [--json]',
    load: () => import('./commands/verify-signature.ts'),
  },
  publish: {
    summary: 'copy a built image with its manifest, SBOM, provenance and checksums to DIR/<name>/<version>/ (a current link, never overwriting; --keep N prunes)',
    usage: 'publish <out/name.qcow2> --to DIR [--keep N]',
    load: () => import('./commands/publish.ts'),
  },
  push: {
    summary: 'push a built image to an OCI registry with skopeo: a KubeVirt containerDisk, or the qcow2 and its records as an OCI artifact',
    usage: 'push <out/name.qcow2> docker://HOST/REPO[:TAG] [--format containerdisk|oci-artifact] [--insecure] [--authfile F]',
    load: () => import('./commands/push.ts'),
  },
  validate: {
    summary: 'check profiles; every problem as file:line:col field: message',
    usage: 'validate <profile.yaml>... [--allow-host-path DIR]...',
    load: () => import('./commands/validate.ts'),
  },
  seed: {
    summary: 'write the NoCloud seed ISO a profile\'s VMs boot with (OSv: user-data only)',
    usage: 'seed <profile.yaml> -o seed.iso [--allow-host-path DIR]...',
    load: () => import('./commands/seed.ts'),
  },
  plan: {
    summary: 'show the stages a build will run, the resolved profile and the NoCloud seed',
    usage: 'plan <profile.yaml> [--json] [--allow-host-path DIR]...',
    load: () => import('./commands/plan.ts'),
  },
  cache: {
    summary: 'list or prune the stage cache (ls: entries, sizes, last use, profile)',
    usage: 'cache ls [--json] | cache prune [--older-than 7d] [--keep-bytes 20G] [--dry-run] (--older-than also discards kept builds that old)',
    load: () => import('./commands/cache.ts'),
  },
  doctor: {
    summary: 'check host tools and which accelerator works here',
    usage: 'doctor [--json] [--refresh]',
    load: () => import('./commands/doctor.ts'),
  },
};

function help(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'guestforge: build VM guest images for HPC clouds',
    '',
    'usage: guestforge <command> [options]',
    '',
    'commands:',
    ...lines,
    '',
    'global options: --debug (stack traces), -h/--help, --version',
    'profiles: host files they name (apps[].src, extends, base.*.path, cloudInit.userData) must be in the',
    '  profile file\'s own folder, by real path; --allow-host-path DIR (repeatable) allows DIR too',
    'exit codes: 0 ok, 1 build/verify failure, 2 usage or profile error, 130/143 interrupted',
    "run 'guestforge <command> --help' for a command's options",
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const [name, ...rest] = args;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(`${help()}\n`);
    return name ? ExitCode.ok : ExitCode.usage;
  }
  if (name === '--version' || name === '-V') {
    const { guestforgeVersion } = await import('./util/project.ts');
    process.stdout.write(`guestforge ${await guestforgeVersion()}\n`);
    return ExitCode.ok;
  }
  const entry = commands[name];
  if (!entry) {
    const { closest } = await import('./profile/suggest.ts');
    const guess = closest(name, Object.keys(commands));
    process.stderr.write(`error: unknown command "${name}"${guess ? ` (did you mean "${guess}"?)` : ''}\n${help()}\n`);
    return ExitCode.usage;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(`usage: guestforge ${entry.usage}\n\n${entry.summary}\n`);
    return ExitCode.ok;
  }
  try {
    const command = await entry.load();
    return await command.run(rest, { debug });
  } catch (error) {
    if (error instanceof UserError) {
      process.stderr.write(`error: ${error.message}\n`);
      if (error.hint) process.stderr.write(`${error.hint.replace(/^/gm, '  ')}\n`);
      if (debug && error.stack) process.stderr.write(`${error.stack}\n`);
      return error.exitCode;
    }
    process.stderr.write(`internal error: ${errorMessage(error)}\n`);
    process.stderr.write(debug && error instanceof Error ? `${error.stack}\n` : 'run again with --debug for the stack trace, and please report it\n');
    return ExitCode.failure;
  }
}

// A reader that stops early (`guestforge plan p.yaml | head`) closes our stdout: later writes are
// dropped instead of crashing the process, so a build still cleans up and exits as it would have.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}
process.exitCode = await main(process.argv.slice(2));
