/*
 * The root of every error xen-channels throws: XenChannelsError, with a stable `code`, a
 * `cause`, and a brand that survives realms and duplicated module copies.
 * Layer: pure. Each layer defines its own subclasses in its own errors.ts.
 */

const brand = Symbol.for('xen-channels.error');

/** Base class of all xen-channels errors; `code` is stable and meant for programs. */
export class XenChannelsError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    Object.defineProperty(this, brand, { value: true });
  }
}

/** True when `value` is an error raised by xen-channels (any copy of the package). */
export function isXenChannelsError(value: unknown): value is XenChannelsError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
}

/** Describes a value for "expected X, got Y" messages. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Buffer.isBuffer(value)) return `Buffer(${value.length})`;
  if (typeof value === 'string')
    return `${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)} (string)`;
  if (typeof value === 'object') return `${value.constructor?.name ?? 'object'}`;
  return `${String(value)} (${typeof value})`;
}
