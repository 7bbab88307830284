import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CommandError, findOnPath, run, shellQuote, ToolMissingError } from '../src/exec/run.ts';

const fixtures = resolve(import.meta.dirname, 'fixtures', 'bin');
const exec = suite('exec');
exec('a missing program names the apt package that ships it', async () => {
  const error = await run(['qemu-img', 'info', 'x'], { env: { PATH: '/nonexistent' } }).catch((e: unknown) => e);
  assert.instance(error, ToolMissingError);
  assert.match((error as ToolMissingError).hint ?? '', /apt-get install qemu-utils/);
});
exec('a failure shows a pasteable command, the exit code and the end of stderr', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gf-exec-'));
  const log = join(dir, 'argv');
  const env = { PATH: `${fixtures}:${process.env.PATH}`, FAKE_FAIL: '1', FAKE_LOG: log };
  const error = await run(['qemu-img', 'info', 'my disk.qcow2'], { env }).catch((e: unknown) => e);
  assert.instance(error, CommandError);
  const e = error as CommandError;
  assert.is(e.message, 'qemu-img exited with code 1');
  assert.match(e.hint ?? '', /command: qemu-img info 'my disk\.qcow2'/);
  assert.match(e.hint ?? '', /\| qemu-img: Could not open/);
  assert.is(await readFile(log, 'utf8'), 'info my disk.qcow2\n');
  await rm(dir, { recursive: true, force: true });
});
exec('a shell\'s own 127 (command -v of something absent) is an answer, not a missing sh; findOnPath looks like the shell does', async () => {
  const r = await run(['sh', '-c', 'command -v no-such-tool-guestforge'], { allowFailure: true });
  assert.is(r.exitCode, 127);
  assert.is(findOnPath('no-such-tool-guestforge'), undefined);
  assert.is(findOnPath('qemu-img', `/nonexistent:${fixtures}`), join(fixtures, 'qemu-img'));
  assert.is(findOnPath('exec.test.ts', resolve(import.meta.dirname)), undefined, 'not executable');
  assert.ok(findOnPath('sh'));
});
exec('a failure\'s stderr reaches the hint without escape sequences or control characters; withStderr adds a daemon\'s words', async () => {
  // What a program may print when it quotes a hostile image's path: clear the screen, retitle the window, a C1 CSI.
  const error = await run(['sh', '-c', 'printf "mount: /mnt\\033[2J\\033]0;owned\\007\\302\\233\\061m: bad\\n" >&2; exit 3']).catch((e: unknown) => e);
  assert.instance(error, CommandError);
  const hint = (error as CommandError).hint ?? '';
  assert.match(hint, /\| mount: \/mnt\]0;owned1m: bad$/m);
  assert.not.match(hint, /[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  const more = (error as CommandError).withStderr('libguestfs: error: the reason\x1b[31m');
  assert.is(more.result.exitCode, 3);
  assert.match(more.hint ?? '', /\| mount: \/mnt.*\n {2}\| libguestfs: error: the reason$/);
});
exec('shellQuote quotes what a shell would split', () => {
  assert.is(shellQuote(['a', 'b c', "it's"]), `a 'b c' 'it'\\''s'`);
});
exec.run();
