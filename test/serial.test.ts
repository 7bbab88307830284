import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanLine, parseSerialLine } from '../src/vm/serial.ts';

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
  assert.is(cleanLine('a\x1b[31mb\r'), 'ab');
});
serial.run();
