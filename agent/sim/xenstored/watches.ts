/*
 * Watch matching for the simulated xenstored: which connections get a WATCH_EVENT for a change,
 * and with which path. Layer: pure.
 * Rules (fire_watches(), watch_permitted(), get_watch_path() in xenstored_watch.c): a change to
 * node P fires every watch on P or an ancestor of P with event path P; an "exact" change (a node
 * below the root of a removed subtree, or a special event) fires only watches on exactly P. A
 * connection gets the event only if it may read one of the event's permission lists (old
 * permissions, the node, its parent). Relative watches get the path with the home stripped.
 * Events whose payload would exceed PAYLOAD_MAX are dropped, as xenstored does.
 */
import { isPathWithin } from '../../xenstore/paths.js';
import type { Permission } from '../../xenstore/perms.js';
import { type Frame, nulTerminated, PAYLOAD_MAX, XsType } from '../../xenstore/wire.js';
import { mayReadAny } from './access.js';
import type { ConnState, Delivery, Watch } from './state.js';

/** A change that may fire watches. */
export interface FireEvent {
  /** Canonical path of the changed node (or the special path). */
  readonly path: string;
  /** Fire only watches on exactly `path`. */
  readonly exact: boolean;
  /** A connection sees the event when it may read through any of these permission lists. */
  readonly readers: ReadonlyArray<readonly Permission[]>;
}

/** True when a change described by `event` fires `watch` (ignoring permissions). */
export function watchMatches(watch: Watch, event: Pick<FireEvent, 'path' | 'exact'>): boolean {
  return event.exact ? watch.path === event.path : isPathWithin(event.path, watch.path);
}

/** The path a watch's events carry: `path` itself, or relative to the home for relative watches. */
export function eventPath(watch: Watch, home: string, path: string): string {
  if (!watch.relative) return path;
  const rest = path.slice(home.length);
  return rest.startsWith('/') ? rest.slice(1) : rest;
}

/** A WATCH_EVENT frame (req_id 0, tx_id 0), or undefined when it would be oversized. */
export function watchEventFrame(path: string, token: string): Frame | undefined {
  const payload = nulTerminated(path, token);
  if (payload.length > PAYLOAD_MAX) return undefined;
  return { type: XsType.WATCH_EVENT, reqId: 0, txId: 0, payload };
}

/** The WATCH_EVENT frames a change produces, connection by connection, watch by watch. */
export function watchEvents(connections: Iterable<ConnState>, event: FireEvent): Delivery[] {
  const out: Delivery[] = [];
  for (const conn of connections) {
    if (conn.watches.length === 0 || !mayReadAny(conn.domid, event.readers)) continue;
    for (const watch of conn.watches) {
      if (!watchMatches(watch, event)) continue;
      const frame = watchEventFrame(eventPath(watch, conn.home, event.path), watch.token);
      if (frame) out.push({ conn, frame });
    }
  }
  return out;
}
