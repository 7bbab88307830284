/**
 * Work folders a finished run left behind. Test files of the other lane may
 * be building in the same cache meanwhile: a folder whose owner (owner.json's
 * pid) still runs is theirs, not a leftover.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function leftWork(cacheRoot: string, prefixes: string[]): Promise<string[]> {
  const dir = join(cacheRoot, 'guestforge', 'work');
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => prefixes.some((p) => n.startsWith(p)));
  const left: string[] = [];
  for (const name of names) {
    const owner = await readFile(join(dir, name, 'owner.json'), 'utf8').then((t) => JSON.parse(t) as { pid?: number }, () => undefined);
    if (!owner?.pid || !alive(owner.pid)) left.push(name);
  }
  return left;
}
