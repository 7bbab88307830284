/**
 * The upload stream of a native OSv compose: the package's files as a cpio
 * "newc" archive (what OSv's cpiod reads), written by GNU cpio from the
 * package folder. Names are relative ("hello.js", "lib/x.so"); cpiod puts
 * them under its --prefix.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { UserError } from '../../errors.ts';
import { run } from '../../exec/run.ts';

/** newc stores sizes in 8 hex digits. */
export const newcMaxFileBytes = 0xffffffff;

/** Every path below `dir` (files, links, folders), parents first, sorted; `skip` names top-level entries to leave out. */
export async function archiveNames(dir: string, skip: string[] = []): Promise<string[]> {
  const names: string[] = [];
  const walk = async (folder: string): Promise<void> => {
    const entries = (await readdir(folder, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const path = join(folder, entry.name);
      const name = relative(dir, path);
      if (folder === dir && skip.includes(entry.name)) continue;
      const info = await lstat(path);
      if (info.isFile() && info.size > newcMaxFileBytes) {
        throw new UserError(`${name} is ${info.size} bytes: the cpio newc format OSv's upload reads holds at most 4 GiB - 1 per file`, {
          hint: 'split the file, or compose with capstan and a ROFS image',
        });
      }
      names.push(name);
      if (info.isDirectory()) await walk(path);
    }
  };
  await walk(dir);
  return names;
}

/** Writes the archive of `dir` to `file` with GNU cpio; returns the names in it. */
export async function writeCpioArchive(dir: string, file: string, skip: string[] = []): Promise<string[]> {
  const names = await archiveNames(dir, skip);
  await run(['cpio', '--create', '--format=newc', '--quiet', `--file=${file}`], {
    cwd: dir,
    input: `${names.join('\n')}\n`,
    timeoutMs: 30 * 60_000,
  });
  return names;
}
