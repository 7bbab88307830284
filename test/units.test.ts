import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseDuration, parseSize } from '../src/profile/units.ts';
import { closest } from '../src/profile/suggest.ts';
import { linesForSuite, parseDeb822, parseOneLine } from '../src/host/apt-sources.ts';

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
