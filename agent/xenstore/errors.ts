/*
 * Errors of the xenstore layer. XenstoreError carries the errno name xenstored (or the
 * client's own limit checks) used, the operation and the path; ProtocolError means the byte
 * stream cannot be trusted any more and the connection is closed; ConnectionClosedError
 * rejects requests that were pending, or made, while the connection is down.
 * Layer: pure.
 */
import { XenChannelsError } from '../errors.js';

/** The errno names of io/xs_wire.h (xsd_errors), plus any other name a server may send. */
export type XenstoreErrno =
  | 'EINVAL'
  | 'EACCES'
  | 'EEXIST'
  | 'EISDIR'
  | 'ENOENT'
  | 'ENOMEM'
  | 'ENOSPC'
  | 'EIO'
  | 'ENOTEMPTY'
  | 'ENOSYS'
  | 'EROFS'
  | 'EBUSY'
  | 'EAGAIN'
  | 'EISCONN'
  | 'E2BIG'
  | 'EPERM'
  | 'EQUOTA';

/** An operation failed: `code` is the errno name, `origin` says who decided. */
export class XenstoreError extends XenChannelsError {
  declare readonly code: XenstoreErrno;
  readonly op: string;
  readonly path: string | undefined;
  readonly origin: 'xenstored' | 'client';

  constructor(
    code: XenstoreErrno,
    op: string,
    path: string | undefined,
    detail: string,
    origin: 'xenstored' | 'client',
    options?: { cause?: unknown },
  ) {
    const where = path === undefined ? '' : ` ${path}`;
    super(code, `xenstore ${op}${where}: ${code} (${detail})`, options);
    this.op = op;
    this.path = path;
    this.origin = origin;
  }
}

const knownErrnos: ReadonlySet<string> = new Set<XenstoreErrno>([
  'EINVAL',
  'EACCES',
  'EEXIST',
  'EISDIR',
  'ENOENT',
  'ENOMEM',
  'ENOSPC',
  'EIO',
  'ENOTEMPTY',
  'ENOSYS',
  'EROFS',
  'EBUSY',
  'EAGAIN',
  'EISCONN',
  'E2BIG',
  'EPERM',
  'EQUOTA',
]);

const errnoMeaning: Record<string, string> = {
  ENOENT: 'no such node',
  EACCES: 'permission denied',
  EAGAIN: 'transaction conflict, retry',
  E2BIG: 'too large',
  EINVAL: 'invalid argument',
  EEXIST: 'already exists',
  ENOSPC: 'quota exceeded',
  EQUOTA: 'quota exceeded',
};

/** Maps the payload of an XS_ERROR reply to a XenstoreError; the only place that does. */
export function errorFromReply(payload: Buffer, op: string, path: string | undefined): XenstoreError {
  const name = payload.toString('latin1').replace(/\0.*$/s, '');
  const code = knownErrnos.has(name) ? (name as XenstoreErrno) : 'EIO';
  const detail = knownErrnos.has(name)
    ? (errnoMeaning[name] ?? 'xenstored refused')
    : `unknown error name ${JSON.stringify(name)}`;
  return new XenstoreError(code, op, path, detail, 'xenstored');
}

/** The byte stream broke the protocol; the connection that saw it is closed. */
export class ProtocolError extends XenChannelsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EPROTO', `xenstore protocol error: ${message}`, options);
  }
}

/** The connection to xenstored is closed (or down while reconnecting). */
export class ConnectionClosedError extends XenChannelsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ECONNCLOSED', message, options);
  }
}

/** No xenstore endpoint could be opened (no xenstored socket, no xenbus device, no permission). */
export class XenstoreUnavailableError extends XenChannelsError {
  readonly endpoint: string;

  constructor(endpoint: string, message: string, options?: { cause?: unknown }) {
    super('ENOXENSTORE', message, options);
    this.endpoint = endpoint;
  }
}

/** Explains an errno from opening an endpoint in words an operator can act on. */
export function unavailableHint(code: string | undefined): string {
  switch (code) {
    case 'ENOENT':
      return 'it does not exist: is this a Xen guest with xenfs/xenbus (or dom0 with xenstored running)?';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied: run as root';
    case 'ECONNREFUSED':
      return 'nothing listens there: is xenstored running?';
    default:
      return code ? `error ${code}` : 'unknown error';
  }
}
