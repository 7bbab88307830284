/** Small guest disks for tests: a file tree written here, then an ext4 image filled by mke2fs -d (no appliance). */
import { chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from '../../src/exec/run.ts';

export type Tree = Record<string, string | { dir: true; mode?: number } | { link: string }>;

export async function writeTree(dir: string, tree: Tree): Promise<void> {
  for (const [path, what] of Object.entries(tree)) {
    const target = join(dir, path);
    await mkdir(dirname(target), { recursive: true });
    if (typeof what === 'string') await writeFile(target, what);
    else if ('link' in what) await symlink(what.link, target);
    else {
      await mkdir(target, { recursive: true });
      if (what.mode !== undefined) await chmod(target, what.mode);
    }
  }
}

/** `fill` may add to the tree folder before it becomes the image (e.g. an rpm database). */
export async function makeImage(tmp: string, name: string, tree: Tree, fill?: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(tmp, `${name}.tree`);
  await writeTree(dir, tree);
  await fill?.(dir);
  const image = join(tmp, `${name}.raw`);
  await run(['mke2fs', '-q', '-t', 'ext4', '-L', 'rootfs', '-d', dir, image, '64M']);
  await rm(dir, { recursive: true, force: true });
  return image;
}
