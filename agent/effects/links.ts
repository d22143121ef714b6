/*
 * The links under the dev root: reading them, making them directly (the mode without udev:
 * containers, busybox images, --no-udev), and verifying that each resolves to the tty it
 * should. Layer: effect (node:fs). Only symlinks that xen-channels could have made (a target
 * of the form ../hvcN) are ever removed; anything else in those directories is left alone.
 * Each link is replaced atomically (symlink to a temporary name, then rename).
 */
import { lstat, mkdir, readdir, readlink, realpath, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FileEffectError } from './errors.js';

const OUR_TARGET = /^\.\.\/hvc[0-7]$/;

/** The link target for tty slot `slot`, relative to a link directory: "../hvc3". */
export function ttyTarget(slot: number): string {
  return `../hvc${slot}`;
}

/** Our links present now: "vport/name" → target. */
export async function readOurLinks(devRoot: string, dirs: readonly string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(join(devRoot, dir));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new FileEffectError('list', join(devRoot, dir), err as NodeJS.ErrnoException);
    }
    for (const name of names) {
      const path = join(devRoot, dir, name);
      const target = await readlink(path).catch(() => undefined);
      if (target !== undefined && OUR_TARGET.test(target)) found.set(`${dir}/${name}`, target);
    }
  }
  return found;
}

/**
 * Makes our links exactly `wanted` ("vport/name" → "../hvcN"): creates or retargets what
 * differs, removes our links that are no longer wanted. Returns what it changed.
 * @throws FileEffectError (the links already changed stay changed; a rerun converges)
 */
export async function syncLinks(
  devRoot: string,
  dirs: readonly string[],
  wanted: ReadonlyMap<string, string>,
): Promise<{ created: string[]; removed: string[] }> {
  const present = await readOurLinks(devRoot, dirs);
  const created: string[] = [];
  const removed: string[] = [];
  for (const [rel, target] of wanted) {
    if (present.get(rel) === target) continue;
    const path = join(devRoot, rel);
    const temporary = `${path}.xc-${process.pid}`;
    try {
      await mkdir(join(path, '..'), { recursive: true });
      const existing = await lstat(path).catch(() => undefined);
      if (existing && !existing.isSymbolicLink()) {
        throw Object.assign(new Error('something that is not a link is in the way'), { code: 'EEXIST' });
      }
      await rm(temporary, { force: true });
      await symlink(target, temporary);
      await rename(temporary, path);
      created.push(rel);
    } catch (err) {
      await rm(temporary, { force: true }).catch(() => {});
      throw new FileEffectError('create the link', path, err as NodeJS.ErrnoException);
    }
  }
  for (const rel of present.keys()) {
    if (wanted.has(rel)) continue;
    await rm(join(devRoot, rel), { force: true }).catch((err) => {
      throw new FileEffectError('remove the link', join(devRoot, rel), err);
    });
    removed.push(rel);
  }
  return { created, removed };
}

/** For each wanted link, a problem text when it does not resolve to its tty (while the tty exists). */
export async function verifyLinks(devRoot: string, wanted: ReadonlyMap<string, string>): Promise<Map<string, string>> {
  const problems = new Map<string, string>();
  for (const [rel, target] of wanted) {
    const path = join(devRoot, rel);
    // The link first, then its tty: a tty that is gone by then (a channel being unplugged
    // during the pass) says nothing about the link, and the next pass drops the channel.
    const actual = await realpath(path).catch((err: NodeJS.ErrnoException) => `(${err.code})`);
    const expected = await realpath(join(devRoot, rel, '..', target)).catch(() => undefined);
    if (expected !== undefined && actual !== expected)
      problems.set(rel, `/dev/${rel} resolves to ${actual}, not to ${expected}`);
  }
  return problems;
}
