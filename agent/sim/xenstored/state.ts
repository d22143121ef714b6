/*
 * The whole state of one simulated xenstored: the data base, the live connections in the order
 * they were opened (watch events go out in that order, like xenstored's connection list), and
 * the set of introduced domains. Layer: pure; the I/O layer owns one SimState per XenstoredSim.
 * Invariants: a connection's watches and open transactions live only in its ConnState, so
 * closeConnection() forgets them all at once (conn_delete_all_watches() and
 * conn_delete_all_transactions() in xenstored_watch.c and xenstored_transaction.c).
 */
import type { Frame } from '../../xenstore/wire.js';
import type { Transaction } from './transaction.js';
import { createStore, type Store } from './tree.js';

/** A registered watch: `path` is canonical (absolute or special); `relative` strips the home. */
export interface Watch {
  readonly path: string;
  readonly token: string;
  readonly relative: boolean;
}

/** One client connection, acting as domain `domid`. */
export interface ConnState {
  /** Unique within the SimState; for messages and maps only. */
  readonly id: number;
  readonly domid: number;
  /** "/local/domain/<domid>": where relative paths are resolved (get_implicit_path()). */
  readonly home: string;
  /** In registration order. */
  readonly watches: Watch[];
  readonly transactions: Map<number, Transaction>;
  /** Next transaction id to try (ids start at 1 and skip 0 and ids in use). */
  nextTransactionId: number;
}

/** A frame to write to a connection. */
export interface Delivery {
  readonly conn: ConnState;
  readonly frame: Frame;
}

export interface SimState {
  readonly store: Store;
  /** Live connections, in the order they were opened. */
  readonly connections: Set<ConnState>;
  /** Domains introduced (domain 0 always counts as introduced). */
  readonly introduced: Set<number>;
  nextConnectionId: number;
}

/** A fresh xenstored: the initial tree, no connections, only domain 0 introduced. */
export function createState(): SimState {
  return { store: createStore(), connections: new Set(), introduced: new Set([0]), nextConnectionId: 1 };
}

/**
 * Creates a connection acting as `domid`. Only connections added to `state.connections` receive
 * watch events; `register: false` makes an internal caller (the sim's own toolstack helpers).
 * @throws RangeError when domid is not an integer in 0..65535.
 */
export function openConnection(state: SimState, domid: number, register = true): ConnState {
  if (!Number.isInteger(domid) || domid < 0 || domid > 0xffff) {
    throw new RangeError(`expected a domid in 0..65535, got ${String(domid)} (${typeof domid})`);
  }
  const conn: ConnState = {
    id: state.nextConnectionId,
    domid,
    home: `/local/domain/${domid}`,
    watches: [],
    transactions: new Map(),
    nextTransactionId: 1,
  };
  state.nextConnectionId += 1;
  if (register) state.connections.add(conn);
  return conn;
}

/** Forgets a connection with its watches and open transactions. */
export function closeConnection(state: SimState, conn: ConnState): void {
  state.connections.delete(conn);
  conn.watches.length = 0;
  conn.transactions.clear();
}
