/*
 * Path rules of docs/misc/xenstore.txt, checked by the client before anything is sent:
 * characters [A-Za-z0-9-/_@], no empty path, no doubled or trailing slash, absolute paths at
 * most ABS_PATH_MAX bytes, relative ones at most REL_PATH_MAX, special watch paths ("@...")
 * only where the operation takes them. Layer: pure.
 */
import { XenstoreError } from './errors.js';
import { ABS_PATH_MAX, REL_PATH_MAX } from './wire.js';

export type PathKind = 'absolute' | 'relative' | 'special';

export interface PathRules {
  /** The transport resolves relative paths (only the guest's xenbus device does). */
  allowRelative: boolean;
  /** The operation accepts "@introduceDomain"-style special paths (watches, permissions). */
  allowSpecial: boolean;
}

const validChars = /^[A-Za-z0-9\-/_@]+$/;

/**
 * Classifies a path or throws the error xenstored would give, before it reaches the wire.
 * @throws XenstoreError EINVAL (bad characters or shape, relative where not allowed) or E2BIG (too long).
 */
export function checkPath(path: string, op: string, rules: PathRules): PathKind {
  const fail = (code: 'EINVAL' | 'E2BIG', detail: string): never => {
    throw new XenstoreError(code, op, path, detail, 'client');
  };
  if (typeof path !== 'string') {
    throw new TypeError(`expected a xenstore path string, got ${String(path)} (${typeof path})`);
  }
  if (path.length === 0) fail('EINVAL', 'empty path');
  if (!validChars.test(path)) fail('EINVAL', 'only letters, digits and - / _ @ are allowed in xenstore paths');
  if (path.startsWith('@')) {
    if (!rules.allowSpecial) fail('EINVAL', `special paths are only valid for watches and permissions, not ${op}`);
    if (path.includes('/')) fail('EINVAL', 'a special path has no slash');
    return 'special';
  }
  if (path.includes('//')) fail('EINVAL', 'doubled slash');
  if (path.length > 1 && path.endsWith('/')) fail('EINVAL', 'trailing slash');
  if (path.startsWith('/')) {
    if (Buffer.byteLength(path) > ABS_PATH_MAX) fail('E2BIG', `absolute paths are limited to ${ABS_PATH_MAX} bytes`);
    return 'absolute';
  }
  if (!rules.allowRelative) {
    fail('EINVAL', 'relative paths need the guest xenbus device; this connection takes absolute paths only');
  }
  if (Buffer.byteLength(path) > REL_PATH_MAX) fail('E2BIG', `relative paths are limited to ${REL_PATH_MAX} bytes`);
  return 'relative';
}

/** Joins a base path and a child name ("/" + "a" = "/a", "a" + "b" = "a/b"). */
export function joinPath(base: string, child: string): string {
  return base.endsWith('/') ? `${base}${child}` : `${base}/${child}`;
}

/** True when `path` is `ancestor` or lies below it (xenstore's "child" relation). */
export function isPathWithin(path: string, ancestor: string): boolean {
  if (ancestor === '/' || path === ancestor) return true;
  return path.startsWith(`${ancestor}/`);
}
