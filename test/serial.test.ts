import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Logger } from '../src/log.ts';
import type { VmRunner, VmStarter } from '../src/vm/runner.ts';
import { bootVm } from '../src/vm/watch.ts';
import type { VmSpec } from '../src/vm/qemu-args.ts';
import { bootLoaderMark, cleanLine, parseSerialLine, startedBootcmd } from '../src/vm/serial.ts';
import { formatBootTiming, parseBootTiming, parseSystemdSpan } from '../src/smoke/boot-timing.ts';
import { plotFromConsole } from '../src/smoke/boot-plot.ts';
import { gzipSync } from 'node:zlib';

const serial = suite('serial console');
serial('result lines need the right nonce', () => {
  assert.equal(parseSerialLine('\x1b[0mGUESTFORGE-RESULT:abc:ok\r', 'abc'), { kind: 'result', ok: true, detail: '' });
  assert.is(parseSerialLine('GUESTFORGE-RESULT:old:ok', 'abc'), undefined);
  const error = parseSerialLine('GUESTFORGE-RESULT:abc:error:command 1: false failed (exit 1)', 'abc');
  assert.equal(error, { kind: 'result', ok: false, detail: 'command 1: false failed (exit 1)' });
});
serial('checks and panics', () => {
  assert.equal(parseSerialLine('GUESTFORGE-CHECK:n1:layout.opt-empty fail /opt holds x', 'n1'), {
    kind: 'check', check: { id: 'layout.opt-empty', status: 'fail', detail: '/opt holds x' },
  });
  assert.is(parseSerialLine('[  1.0] Kernel panic - not syncing: VFS', 'n1')?.kind, 'panic');
  // A check's field travels on a line of its own, never read out of the check's words.
  assert.equal(parseSerialLine('GUESTFORGE-DATA:n1:vrdma.rxe-private device rxe_cluster\r', 'n1'), { kind: 'data', id: 'vrdma.rxe-private', key: 'device', value: 'rxe_cluster' });
  assert.is(parseSerialLine('GUESTFORGE-DATA:old:vrdma.rxe-private device rxe0', 'n1'), undefined);
  assert.is(parseSerialLine('GUESTFORGE-DATA:n1:vrdma.rxe-private de;vice rxe0', 'n1'), undefined, 'a key is a plain name');
  assert.is(cleanLine('a\x1b[31mb\r'), 'ab');
});
serial('boot timing: the guest\'s TIMING lines become phases, slowest units and cloud-init stages', () => {
  assert.equal(parseSerialLine('GUESTFORGE-TIMING:n1:unit 20.072s cloud-init-local.service\r', 'n1'), { kind: 'timing', text: 'unit 20.072s cloud-init-local.service' });
  assert.is(parseSerialLine('GUESTFORGE-TIMING:other:unit 1s a.service', 'n1'), undefined);
  assert.is(parseSystemdSpan('1min 2.5s'), 62_500);
  assert.is(parseSystemdSpan('345ms'), 345);
  assert.is(parseSystemdSpan('1h 1min'), 3_660_000);
  assert.is(parseSystemdSpan('12 s'), undefined);
  assert.is(parseSystemdSpan(''), undefined);
  // As printed by a smoke VM of the default image (initramfs-tools runs no systemd in the initramfs: InitRD is 0).
  const t = parseBootTiming([
    'phases uptime=72.46 InitRDTimestampMonotonic=0 UserspaceTimestampMonotonic=8704989 ',
    'unit 20.072s cloud-init-local.service',
    'unit  1min 1.5s slow.service',
    'unit 7ms dev-mqueue.mount',
    'unit garbage',
    'cloud-init init-local 1815',
    'cloud-init init 5291',
    'cloud-init ../etc 1',
    // systemd-analyze critical-chain cloud-config.service, as the guest's report prints it.
    'chain cloud-config.service +5.660s',
    'chain └─cloud-init.service @24.104s +7.244s',
    'chain   └─systemd-networkd-wait-online.service @1min 2.3s +1.795s',
    'chain     └─systemd-journald.socket @3.1s',
    'chain       └─-.mount',
    'chain └─bad unit name; rm -rf / @1s +1s',
    'chain `-ascii.target @2s',
    // What the console reader (latin1) makes of a UTF-8 tree drawing.
    `chain ${Buffer.from('  └─sysinit.target @39.174s', 'utf8').toString('latin1')}`,
  ], 88_000);
  assert.equal(t, {
    units: [{ unit: 'cloud-init-local.service', ms: 20_072 }, { unit: 'slow.service', ms: 61_500 }, { unit: 'dev-mqueue.mount', ms: 7 }],
    cloudInit: [{ stage: 'init-local', ms: 1815 }, { stage: 'init', ms: 5291 }],
    chain: [
      { unit: 'cloud-config.service', ms: 5660 },
      { unit: 'cloud-init.service', atMs: 24_104, ms: 7244 },
      { unit: 'systemd-networkd-wait-online.service', atMs: 62_300, ms: 1795 },
      { unit: 'systemd-journald.socket', atMs: 3100 },
      { unit: '-.mount' },
      { unit: 'ascii.target', atMs: 2000 },
      { unit: 'sysinit.target', atMs: 39_174 },
    ],
    kernelMs: 8705, userspaceMs: 63_755, beforeKernelMs: 15_540,
  });
  const withInitrd = parseBootTiming(['phases uptime=30.0 InitRDTimestampMonotonic=2000000 UserspaceTimestampMonotonic=9000000']);
  assert.equal([withInitrd.kernelMs, withInitrd.initrdMs, withInitrd.userspaceMs, withInitrd.beforeKernelMs], [2000, 7000, 21_000, undefined]);
  assert.match(formatBootTiming(t).join('\n'), /^phases: before kernel 15\.5s, kernel 8\.7s, initramfs \?, userspace to report 63\.8s\nslowest units: cloud-init-local\.service 20\.1s/);
  assert.match(formatBootTiming(t).join('\n'), /\ncritical chain: systemd-networkd-wait-online\.service @62\.3s \+1\.8s → cloud-init\.service @24\.1s \+7\.2s → cloud-config\.service \+5\.7s$/);
});
serial('GRUB\'s loading lines split the time before the kernel', () => {
  assert.is(bootLoaderMark('\x1b[0m  Loading Linux 6.12.118+deb13-amd64 ...\r'), 'kernel');
  assert.is(bootLoaderMark('  Loading initial ramdisk ...'), 'initrd');
  // OVMF copies GRUB's firmware console to the serial port: each line comes twice, on one line.
  assert.is(bootLoaderMark('\rLoading Linux 6.12.118+deb13-amd64 ...Loading Linux 6.12.118+deb13-amd64 ...'), 'kernel');
  assert.is(bootLoaderMark('\rLoading initial ramdisk ...Loading initial ramdisk ...'), 'initrd');
  assert.is(bootLoaderMark('Loading initial ramdisk ...Loading initial ramdisk ...Loading initial ramdisk ...'), undefined);
  assert.is(bootLoaderMark('[    2.1] Loading Linux modules'), undefined, 'a kernel or systemd line');
  assert.is(bootLoaderMark('Loading Linux 6.1 ... done'), undefined);
  const phases = 'phases uptime=60.0 UserspaceTimestampMonotonic=9000000';
  // qemu started at 0; the result line came at 80 s, the guest's clock said 60 s: 20 s before the kernel.
  const split = parseBootTiming([phases], 80_000, { kernelMs: 6500, initrdMs: 11_000 });
  assert.equal(split.beforeKernel, { firmwareMs: 6500, kernelReadMs: 4500, initrdReadMs: 9000 });
  assert.match(formatBootTiming(split)[0]!, /before kernel 20\.0s \(firmware and GRUB's start 6\.5s, GRUB reading the kernel 4\.5s, the initramfs and the kernel unpacking 9\.0s\)/);
  assert.equal(parseBootTiming([phases], 80_000, { kernelMs: 6500 }).beforeKernel, { firmwareMs: 6500 }, 'no initramfs line');
  assert.is(parseBootTiming([phases], 80_000, { kernelMs: 25_000, initrdMs: 26_000 }).beforeKernel, undefined, 'a line after the kernel started is not GRUB\'s');
  assert.equal(parseBootTiming([phases], 80_000, { kernelMs: 6500, initrdMs: 30_000 }).beforeKernel, { firmwareMs: 6500 }, 'an initramfs line after the kernel started');
  assert.is(parseBootTiming([phases], 80_000).beforeKernel, undefined);
});
serial('report.sh reads the guest\'s clock just before the result line and times the boot after it', async () => {
  // The uptime says when the kernel started only if it is read when the host sees the result; the
  // systemd-analyze runs take seconds under TCG, so they come after it (and out of the smoke result).
  const report = await readFile(join(import.meta.dirname, '..', 'cloud-init', 'report.sh'), 'utf8');
  const at = (text: string) => report.lastIndexOf(text);
  assert.ok(at("up=$(cut -d' ' -f1 /proc/uptime)\nsay \"$tag-RESULT:") > 0, 'uptime read right before the last result line');
  assert.ok(at('say "$tag-RESULT:') < at('TIMING:$nonce:phases uptime=$up') && at('say "$tag-RESULT:') < at('systemd-analyze blame'), 'timing after the result');
});
serial('the smoke VM\'s boot plot: gzip in base64 lines, then end; decoded, bounded and checked like the rehearsal\'s', async () => {
  const svg = await readFile(join(import.meta.dirname, 'fixtures', 'systemd-plot.svg'), 'utf8');
  const lines = (text: string | Buffer) => [...(gzipSync(text).toString('base64').match(/.{1,64}/g) ?? []), 'end'];
  assert.equal(plotFromConsole(lines(svg)), { svg });
  assert.equal(parseSerialLine(`GUESTFORGE-PLOT:n1:${lines(svg)[0]}\r`, 'n1'), { kind: 'plot', chunk: lines(svg)[0] });
  assert.equal(parseSerialLine('GUESTFORGE-PLOT:n1:end', 'n1'), { kind: 'plot', chunk: 'end' });
  assert.is(parseSerialLine('GUESTFORGE-PLOT:n1:not base64!', 'n1'), undefined);
  assert.is(parseSerialLine('GUESTFORGE-PLOT:old:end', 'n1'), undefined, 'another boot\'s');
  assert.match((plotFromConsole([]) as { problem: string }).problem, /sent none/);
  assert.match((plotFromConsole(lines(svg).slice(0, -1)) as { problem: string }).problem, /cut short/);
  assert.match((plotFromConsole(lines('<svg><script>x</script></svg>')) as { problem: string }).problem, /not an SVG document/);
  assert.match((plotFromConsole(['AAAA', 'end']) as { problem: string }).problem, /not a gzip stream/);
  // A bomb: 5 MB of zeroes gzip to a few KB; cut at 4 MB, not kept.
  assert.match((plotFromConsole(lines(Buffer.alloc(5_000_000))) as { problem: string }).problem, /at most 4000000 bytes \(Cannot create a Buffer larger than 4000000 bytes/);
  assert.match((plotFromConsole(['none']) as { problem: string }).problem, /could not make it/);
  assert.equal(parseSerialLine('GUESTFORGE-PLOT:n1:none', 'n1'), { kind: 'plot', chunk: 'none' });
  assert.is(parseSerialLine(`GUESTFORGE-PLOT:n1:${'A'.repeat(77)}`, 'n1'), undefined, 'longer than base64 lines are');
});
serial('the seed\'s started line and the login prompt', () => {
  assert.equal(parseSerialLine('GUESTFORGE-STARTED:n1\r', 'n1'), { kind: 'started' });
  assert.is(parseSerialLine('GUESTFORGE-STARTED:old', 'n1'), undefined);
  assert.equal(parseSerialLine('GUESTFORGE-STARTED:n1[   12.3] virtio_net virtio0 ens3: renamed', 'n1'), { kind: 'started' }, 'a kernel message on the same line');
  assert.is(parseSerialLine('GUESTFORGE-STARTED:n1ab', 'n1'), undefined, 'a longer nonce is another VM\'s');
  assert.equal(parseSerialLine('vm login: \r', 'n1'), { kind: 'login' });
  assert.is(parseSerialLine('debian-12-hpc login: [   53.2] cloud-init[486]: Cloud-init v. 22.4.2 running', 'n1'), undefined);
  assert.match(startedBootcmd('n1')[2]!, /echo GUESTFORGE-STARTED:n1 > "\$c"/);
});

serial('a kept build VM says it opened its console in a line with the nonce, not in words', async () => {
  assert.equal(parseSerialLine('GUESTFORGE-KEPT:n1:console\r', 'n1'), { kind: 'kept', open: 'console' });
  assert.is(parseSerialLine('GUESTFORGE-KEPT:old:console', 'n1'), undefined, 'another build\'s line');
  assert.is(parseSerialLine('guestforge: kept for debugging: root can log in on the console with the one-time password', 'n1'), undefined, 'the words are for people');
  const report = await readFile(join(import.meta.dirname, '..', 'cloud-init', 'report.sh'), 'utf8');
  assert.match(report, /chpasswd \\\n\s+&& say "\$tag-KEPT:\$nonce:console"/, 'report.sh prints it once the password is set');
});
serial.run();

/** A VM that only writes the given console lines, then powers off (or idles until stopped). */
function scriptedVm(lines: string[], powerOff: boolean): VmStarter {
  return async (spec) => {
    await writeFile(spec.serialLog, '');
    let stopped = false;
    setTimeout(() => void appendFile(spec.serialLog, lines.map((l) => `${l}\r\n`).join('')), 50);
    if (powerOff) setTimeout(() => (stopped = true), 1500);
    const vm: VmRunner = {
      argv: ['scripted'],
      wait: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 100))),
      stopped: async () => stopped,
      powerdown: async () => undefined,
      stop: async () => {
        stopped = true;
      },
      failure: async () => undefined,
    };
    return vm;
  };
}

const watch = suite('the VM watch loop');
watch('a login prompt and no started line from the seed: fails as no-cloud-init, long before the build timeout', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gf-serial-'));
  try {
    const spec = { serialLog: join(dir, 'console.log') } as VmSpec;
    const options = { label: 'build VM', nonce: 'n1', timeoutMs: 60_000, stallMs: 60_000, startedWithinMs: 300, log: new Logger({ tty: false }) };
    const t0 = Date.now();
    const outcome = await bootVm(spec, options, scriptedVm(['[  20.8] sr 0:0:0:0: [sr0] scsi3-mmc drive', 'vm login: '], false));
    assert.is(outcome.failure, 'no-cloud-init');
    assert.match(outcome.detail, /build VM reached its login prompt, but cloud-init never ran the seed's bootcmd/);
    assert.ok(Date.now() - t0 < 10_000);
    const fine = await bootVm(spec, options, scriptedVm(['GUESTFORGE-STARTED:n1', 'vm login: ', 'GUESTFORGE-RESULT:n1:ok'], true));
    assert.is(fine.failure, undefined, fine.detail);
    assert.ok(fine.ok);
    assert.equal(fine.bootLoader, {}, 'GRUB printed nothing');
    const grub = await bootVm(spec, options, scriptedVm(['  Loading Linux 6.12.118+deb13-amd64 ...', '  Loading initial ramdisk ...', 'GUESTFORGE-STARTED:n1', 'GUESTFORGE-RESULT:n1:ok', '  Loading Linux 9 ...'], true));
    assert.ok(grub.bootLoader.kernelMs !== undefined && grub.bootLoader.initrdMs !== undefined && grub.bootLoader.kernelMs <= grub.bootLoader.initrdMs, JSON.stringify(grub.bootLoader));
    assert.ok(grub.bootLoader.initrdMs! <= grub.resultMs!, 'seen when the watcher read them, before the result');
    assert.equal(grub.plot, [], 'no plot lines');
    const plotted = await bootVm(spec, options, scriptedVm(['GUESTFORGE-STARTED:n1', 'GUESTFORGE-PLOT:n1:AAAA', 'GUESTFORGE-RESULT:n1:ok', 'GUESTFORGE-TIMING:n1:phases uptime=1.0', 'GUESTFORGE-PLOT:n1:H4sI', 'GUESTFORGE-PLOT:n1:end', 'GUESTFORGE-PLOT:n1:BBBB'], true));
    assert.equal(plotted.plot, ['H4sI', 'end'], 'after the result only, up to its end line');
    assert.equal(plotted.timing, ['phases uptime=1.0'], 'the timing lines follow the result');
    // A RedHat image reboots once to relabel: the marks are the last boot's.
    const twice = await bootVm(spec, options, scriptedVm(['  Loading Linux 5.14 ...', '  Loading initial ramdisk ...', 'GUESTFORGE-STARTED:n1', '  Loading Linux 5.14 ...', 'GUESTFORGE-RESULT:n1:ok'], true));
    assert.ok(twice.bootLoader.kernelMs !== undefined && twice.bootLoader.initrdMs === undefined, JSON.stringify(twice.bootLoader));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
watch.run();
