/*
 * Errors of the effects layer: a file-system or program step that failed, with the path or
 * command, the errno or exit status, and what an operator can do about it. Layer: pure.
 */
import { XenChannelsError } from '../errors.js';

const advice: Record<string, string> = {
  ENOSPC: 'the file system is full: free space there',
  EROFS: 'the file system is read-only: remount it read-write',
  EACCES: 'permission denied: run as root',
  EPERM: 'operation not permitted: run as root',
  ENOENT: 'a directory on the way does not exist',
  EDQUOT: 'disk quota exceeded',
};

/** A file operation failed; nothing half-written was left behind. */
export class FileEffectError extends XenChannelsError {
  readonly path: string;

  constructor(action: string, path: string, cause: NodeJS.ErrnoException) {
    const code = cause.code ?? 'EIO';
    super(code, `cannot ${action} ${path}: ${code} (${advice[code] ?? cause.message})`, { cause });
    this.path = path;
  }
}

/** A program (udevadm) failed or could not be started. */
export class ExecError extends XenChannelsError {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;

  constructor(command: string, exitCode: number | null, stderr: string, hint: string, options?: { cause?: unknown }) {
    // A cause without an exit code: it never ran (spawn ENOENT, EACCES); else it was killed (timeout).
    const status =
      exitCode !== null
        ? `exited with ${exitCode}`
        : options?.cause instanceof Error
          ? `could not be started (${options.cause.message})`
          : 'did not finish';
    const detail = stderr.trim().split('\n').slice(-2).join(' / ').slice(0, 300);
    super('EEXEC', `${command} ${status}${detail ? `: ${detail}` : ''}; ${hint}`, options);
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** Another xen-channels process held the lock for too long. */
export class LockTimeoutError extends XenChannelsError {
  constructor(key: string, holder: string) {
    super(
      'ELOCKED',
      `timed out waiting for the xen-channels lock of ${key}, held by ${holder}; if that process hangs, stop it`,
    );
  }
}
