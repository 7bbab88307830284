import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseDuration, parseSize } from '../src/profile/units.ts';
import { closest } from '../src/profile/suggest.ts';
import { linesForSuite, parseDeb822, parseOneLine } from '../src/host/apt-sources.ts';
import { netdevArg, qemuArgs } from '../src/vm/qemu-args.ts';

const units = suite('units');
units('sizes and durations', () => {
  assert.is(parseSize('8G'), 8 * 1024 ** 3);
  assert.is(parseSize('512M'), 512 * 1024 ** 2);
  assert.is(parseDuration('30m'), 1_800_000);
  assert.throws(() => parseSize('big'));
});
units('did you mean', () => {
  assert.is(closest('sise', ['size', 'format', 'compress']), 'size');
  assert.is(closest('zzzzzz', ['size']), undefined);
});
units.run();

const apt = suite('apt sources');
apt('mirror auto for a Debian release the host does not name: the host\'s archive lines carried over, security included', () => {
  const host = [
    ...parseDeb822('Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n'),
    ...parseOneLine('deb http://ppa.invalid/x focal main\n'),
  ];
  assert.equal(linesForSuite(host, 'trixie'), [
    'deb http://mirror.invalid/debian trixie main',
    'deb http://mirror.invalid/debian trixie-updates main',
    'deb http://mirror.invalid/debian-security trixie-security main',
  ]);
  assert.equal(linesForSuite(host, 'bookworm')[0], 'deb http://mirror.invalid/debian bookworm main', 'the host\'s own suite as before');
  assert.equal(linesForSuite(host, 'focal'), ['deb http://ppa.invalid/x focal main'], 'not a Debian release: only what the host names');
  assert.equal(linesForSuite(host, 'sid'), [], 'sid is no stable release to carry -security to');
});

apt('deb822 and one-line sources give the suite lines', () => {
  const sources = [
    ...parseDeb822('Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb-src\nURIs: http://x.invalid\nSuites: bookworm\n'),
    ...parseOneLine('deb [arch=amd64] http://mirror.invalid/security bookworm-security main contrib\n# deb http://old.invalid bookworm main\n'),
  ];
  assert.equal(linesForSuite(sources, 'bookworm'), [
    'deb http://mirror.invalid/debian bookworm main',
    'deb http://mirror.invalid/debian bookworm-updates main',
    'deb http://mirror.invalid/security bookworm-security main contrib',
  ]);
});
apt.run();

const qemu = suite('qemu argv');
qemu('a comma in a path is doubled, not the start of an option; smoke VMs are isolated', () => {
  const spec = {
    disk: '/imgs/a,format=raw,file=/etc/shadow.qcow2', diskFormat: 'qcow2' as const, seedIso: '/w/seed,1.iso', memoryMiB: 512, cpus: 1,
    accel: 'tcg' as const, serialLog: '/w/con,sole.log', qmpSocket: '/w/q,mp.sock', unsafeCache: true,
  };
  const argv = qemuArgs(spec);
  assert.ok(argv.includes('file=/imgs/a,,format=raw,,file=/etc/shadow.qcow2,format=qcow2,if=virtio,cache=unsafe,discard=unmap'), argv.join(' '));
  assert.ok(argv.includes('file=/w/seed,,1.iso,format=raw,media=cdrom,readonly=on'));
  assert.ok(argv.includes('file,id=serial0,path=/w/con,,sole.log'));
  assert.ok(argv.includes('unix:/w/q,,mp.sock,server=on,wait=off'));
  assert.is(netdevArg({}), 'user,id=net0');
  assert.is(netdevArg({ isolated: true, hostForward: { hostPort: 2222, guestPort: 22 } }), 'user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22');
});
qemu.run();

