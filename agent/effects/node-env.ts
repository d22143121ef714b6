/*
 * The real system as an Env: the only module that names /dev, /sys, /run and /proc.
 * Composition roots (cli/, the service, the udev helper) call nodeEnv(); everything below
 * them receives the Env. Layer: effect wiring. A `root` option moves every tree under one
 * directory (the simulated guest of `xen-channel demo --keep` is used that way).
 */
import { execFile } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from '../clock.js';
import { DEFAULT_LINK_DIRS } from '../model/rules.js';
import { chooseTransport } from '../xenstore/default-transport.js';
import type { Transport } from '../xenstore/transport.js';
import { UnixSocketTransport } from '../xenstore/transports/unix-socket.js';
import type { Env, Exec, Logger, Roots, TtyProbe } from './env.js';

export const SYSTEM_ROOTS: Roots = { dev: '/dev', sys: '/sys', run: '/run', proc: '/proc' };

export const nodeExec: Exec = {
  run: (command, args, options = {}) =>
    new Promise((resolve, reject) => {
      const started = performance.now();
      execFile(
        command,
        [...args],
        { timeout: options.timeoutMs, maxBuffer: 1 << 20, encoding: 'utf8' },
        (err, stdout, stderr) => {
          const failure = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
          if (failure && typeof failure.code === 'string') {
            reject(failure);
            return;
          }
          const exitCode = failure ? (typeof failure.code === 'number' ? failure.code : null) : 0;
          resolve({ exitCode, stdout, stderr, durationMs: performance.now() - started });
        },
      );
    }),
};

/** Opens a tty without reading and without making it our controlling terminal, then closes it. */
export async function probeTty(path: string): Promise<TtyProbe> {
  try {
    const handle = await open(path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    await handle.close();
    return 'occupied';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENODEV' || code === 'ENXIO' || code === 'EIO') return 'empty';
    if (code === 'ENOENT') return 'missing';
    return 'error';
  }
}

/**
 * Under a `root` (a simulated guest) xenstore is the Unix socket the simulator serves at
 * <dev>/xen/xenbus, standing for the guest's xenbus device: relative paths, and one request
 * at a time (the simulator mangles pipelined requests as the real device does).
 */
function simulatedXenbus(roots: Roots): Transport {
  return new UnixSocketTransport(join(roots.dev, 'xen', 'xenbus'), { relativePaths: true, oneRequestAtATime: true });
}

export interface NodeEnvOptions {
  readonly log: Logger;
  readonly linkMode: Env['linkMode'];
  /** Move every tree below this directory (a simulated guest); default: the real system. */
  readonly root?: string;
  readonly xenstore?: Transport;
  readonly linkDirs?: readonly string[];
}

export function nodeEnv(options: NodeEnvOptions): Env {
  const roots: Roots = options.root
    ? {
        dev: join(options.root, 'dev'),
        sys: join(options.root, 'sys'),
        run: join(options.root, 'run'),
        proc: join(options.root, 'proc'),
      }
    : SYSTEM_ROOTS;
  return {
    roots,
    clock: systemClock,
    log: options.log,
    exec: nodeExec,
    xenstore:
      options.xenstore ??
      (options.root ? simulatedXenbus(roots) : chooseTransport({ env: process.env, exists: existsSync })),
    probeTty,
    linkMode: options.linkMode,
    linkDirs: options.linkDirs ?? DEFAULT_LINK_DIRS,
  };
}
