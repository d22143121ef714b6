/*
 * File effects under the injected roots: atomic replacement of a file (the generated rules
 * and the saved model), reading a file that may be missing, and the inter-process lock that
 * serialises the service and the udev helper. Layer: effect (node:fs).
 * Atomic write: a temporary file in the same directory, fsync, rename; on any failure the
 * temporary file is removed and the old content stays (a full or read-only /run loses nothing).
 * Lock: an abstract-namespace Unix socket per run root (see withLock). On Node 18 every
 * abstract name maps to one all-zero address (its libuv copies the name as a C string), so
 * there the lock is one machine-wide mutex: correct, only less fine-grained.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
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

/**
 * Removes what writers killed in the middle of writeFileAtomic left in `dir`: files named
 * `<name>.tmp-<pid>` whose process is gone. A live writer's temporary file is left alone.
 * Returns the paths removed. @throws FileEffectError when `dir` cannot be listed (missing is fine)
 */
export async function removeStaleTemporaries(dir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new FileEffectError('list', dir, err as NodeJS.ErrnoException);
  }
  const removed: string[] = [];
  for (const entry of entries) {
    const pid = Number(/\.tmp-(\d+)$/.exec(entry)?.[1]);
    if (!pid || processAlive(pid)) continue;
    await rm(join(dir, entry), { force: true });
    removed.push(join(dir, entry));
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
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

/** The kernel's start time of process `pid` (field 22 of /proc/<pid>/stat), or undefined. */
async function startTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/**
 * Announces that the agent runs for run directory `runDir` (a pid file with the process's
 * start time, so that a reused pid is not mistaken for it) until the returned function is
 * called: the udev helper then stands aside, the agent's watch covers the change.
 * (An abstract socket would be the tidier sign, but Node 18's libuv turns every abstract
 * name into the same all-zero address, which then collides with the lock.)
 * @throws FileEffectError
 */
export async function announceAgent(runDir: string): Promise<() => Promise<void>> {
  const path = join(runDir, 'xen-channels', 'agent.pid');
  await writeFileAtomic(path, `${process.pid} ${await startTime(process.pid)}\n`);
  return () => rm(path, { force: true });
}

/** True when a live agent has announced itself for run directory `runDir`. */
export async function agentRunning(runDir: string): Promise<boolean> {
  const text = await readFileIfExists(join(runDir, 'xen-channels', 'agent.pid')).catch(() => undefined);
  const [pid, started] = (text ?? '').trim().split(' ');
  if (!pid || !/^\d+$/.test(pid)) return false;
  return started !== undefined && (await startTime(Number(pid))) === started;
}
