/*
 * The effects seam of the agent: every side effect the reconcile step and the service need,
 * as interfaces. node-env.ts wires the real system (and is the only file that names /dev,
 * /sys, /run); the simulator wires a temporary tree and its own xenstored. Layer: interfaces
 * only. Paths are always built from `roots`.
 */
import type { Clock } from '../clock.js';
import type { Transport } from '../xenstore/transport.js';

/** Where the system's trees are: "/dev", "/sys", "/run", "/proc" on a real guest. */
export interface Roots {
  readonly dev: string;
  readonly sys: string;
  readonly run: string;
  readonly proc: string;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Structured log lines for operators: what happened, to which channel, what to do. */
export interface Logger {
  log(level: LogLevel, message: string, fields?: Readonly<Record<string, unknown>>): void;
}

export interface ExecResult {
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

/** Runs a program without a shell. Rejects only when it cannot be started (ENOENT...). */
export interface Exec {
  run(command: string, args: readonly string[], options?: { timeoutMs?: number }): Promise<ExecResult>;
}

/**
 * What opening a tty node says, without reading from it: 'empty' (ENODEV/ENXIO: no console
 * behind it), 'occupied' (it opened), 'missing' (no node), 'error' (anything else).
 */
export type TtyProbe = 'empty' | 'occupied' | 'missing' | 'error';

export interface Env {
  readonly roots: Roots;
  readonly clock: Clock;
  readonly log: Logger;
  readonly exec: Exec;
  /** How to reach xenstore (the guest's xenbus device on a real guest). */
  readonly xenstore: Transport;
  /** Opens the tty at `path` without reading (O_NOCTTY|O_NONBLOCK) and closes it again. */
  probeTty(path: string): Promise<TtyProbe>;
  /** 'udev': links through generated udev rules; 'direct': symlinks made by xen-channels itself. */
  readonly linkMode: 'udev' | 'direct';
  /** Link directories under the dev root (default vport, xen-channel, virtio-ports). */
  readonly linkDirs: readonly string[];
}
