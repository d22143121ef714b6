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
import { createConnection, createServer, type Server } from 'node:net';
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

/** A name in Linux's abstract socket namespace for `kind` and `key` (the run root). */
function abstractName(kind: string, key: string): string {
  return `\0xen-channels-${kind}-${createHash('sha256').update(key).digest('hex').slice(0, 32)}`;
}

/** Binds `name` on a new server; undefined when another process holds it. */
async function bindAbstract(name: string): Promise<Server | undefined> {
  const server = createServer();
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') resolve(undefined);
      else reject(err);
    });
    server.listen(name, () => resolve(server));
  });
}

const closeServer = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/**
 * Runs `fn` while holding the lock named by `key` (e.g. the run root): a Unix socket bound in
 * Linux's abstract namespace, which the kernel releases when the holder exits or crashes, so
 * no stale lock can ever block the service or the udev helper. Waits, polling every 50 ms
 * and only while another process holds it, up to `timeoutMs`.
 * @throws LockTimeoutError
 */
export async function withLock<T>(key: string, clock: Clock, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const started = clock.now();
  let server: Server | undefined;
  for (;;) {
    server = await bindAbstract(abstractName('lock', key));
    if (server) break;
    if (clock.now() - started > timeoutMs) throw new LockTimeoutError(key, 'another xen-channels process');
    await clock.sleep(50);
  }
  server.unref();
  try {
    return await fn();
  } finally {
    await closeServer(server);
  }
}

/**
 * Announces that the agent runs for run root `key` until the returned function is called (or
 * the process ends): the udev helper then has nothing to do, the agent's watch covers it.
 */
export async function announceAgent(key: string): Promise<() => Promise<void>> {
  const server = await bindAbstract(abstractName('agent', key));
  if (!server) throw new Error(`another xen-channels agent already runs for ${key}`);
  server.unref();
  return () => closeServer(server);
}

/** True when an agent has announced itself for run root `key`. */
export function agentRunning(key: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(abstractName('agent', key));
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
