/*
 * File effects under the injected roots: atomic replacement of a file (the generated rules
 * and the saved model), reading a file that may be missing, and the inter-process lock that
 * serialises the service and the udev helper. Layer: effect (node:fs).
 * Atomic write: a temporary file in the same directory, fsync, rename; on any failure the
 * temporary file is removed and the old content stays (a full or read-only /run loses nothing).
 * Lock: an abstract-namespace Unix socket per run root (see withLock).
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import type { Clock } from '../clock.js';
import { FileEffectError, LockTimeoutError } from './errors.js';

/** Replaces `path` with `content` atomically, creating its directory. @throws FileEffectError */
export async function writeFileAtomic(path: string, content: string): Promise<void> {
  const dir = dirname(path);
  const temporary = `${path}.tmp-${process.pid}`;
  try {
    await mkdir(dir, { recursive: true });
    const handle = await open(temporary, 'w', 0o644);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true }).catch(() => {});
    throw new FileEffectError('write', path, err as NodeJS.ErrnoException);
  }
}

/** The content of `path`, or undefined when it does not exist. @throws FileEffectError otherwise */
export async function readFileIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FileEffectError('read', path, err as NodeJS.ErrnoException);
  }
}

/**
 * Runs `fn` while holding the lock named by `key` (e.g. the run root): a Unix socket bound in
 * Linux's abstract namespace, which the kernel releases when the holder exits or crashes, so
 * no stale lock can ever block the service or the udev helper. Waits, polling every 20 ms
 * and only while another process holds it, up to `timeoutMs`.
 * @throws LockTimeoutError
 */
export async function withLock<T>(key: string, clock: Clock, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const name = `\0xen-channels-lock-${createHash('sha256').update(key).digest('hex').slice(0, 32)}`;
  const started = clock.now();
  const server = createServer();
  for (;;) {
    const bound = await new Promise<boolean>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        if (err.code === 'EADDRINUSE') resolve(false);
        else reject(err);
      };
      server.once('error', onError);
      server.listen(name, () => {
        server.off('error', onError);
        resolve(true);
      });
    });
    if (bound) break;
    if (clock.now() - started > timeoutMs) throw new LockTimeoutError(key, 'another xen-channels process');
    await clock.sleep(20);
  }
  server.unref();
  try {
    return await fn();
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
