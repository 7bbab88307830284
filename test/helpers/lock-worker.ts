/**
 * A process of the lock stress test: `rounds` times, take the lock, prove it
 * is alone (an O_EXCL marker file nobody else may hold), give the others a
 * chance to cheat, let go. Exit 3 at the first round that found another
 * holder inside. With `hold`, take the lock once and wait to be killed.
 */
import { open, rm } from 'node:fs/promises';
import { acquireLock } from '../../src/exec/lock.ts';

const [lockPath, marker, roundsText, mode] = process.argv.slice(2);
if (mode === 'hold') {
  await acquireLock(lockPath!, { profile: 'holder' });
  process.stdout.write('held\n');
  await new Promise(() => setInterval(() => undefined, 60_000));
}
for (let i = 0; i < Number(roundsText); i += 1) {
  const lock = await acquireLock(lockPath!, { profile: `worker-${process.pid}` });
  let mine;
  try {
    mine = await open(marker!, 'wx');
  } catch {
    console.error(`round ${i}: another process held the lock at the same time`);
    process.exit(3);
  }
  await new Promise((r) => setImmediate(r));
  await mine.close();
  await rm(marker!);
  await lock.release();
}
