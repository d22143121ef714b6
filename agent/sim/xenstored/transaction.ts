/*
 * Views of the tree operations go through: the global view changes the data base and fires
 * watches at once; a transaction's view records each node it touches and keeps its changes and
 * events until commit. Layer: pure.
 * Conflicts (access_node(), finalize_transaction() in xenstored_transaction.c): a node's first
 * read records its generation (NO_GENERATION if missing); commit fails with EAGAIN, applying
 * nothing, if any recorded node changed since. Reads are lazy, as in xenstored: a change made
 * before the transaction first touches a node is simply seen. Commit fires queued events.
 */
import type { Permission } from '../../xenstore/perms.js';
import { NO_GENERATION, type NodeContent, parentOf, type Store, type XsNode } from './tree.js';
import type { FireEvent } from './watches.js';

/** Read and write access to the tree for one operation. */
export interface TreeView {
  /** The node at a canonical path, or undefined. */
  read(path: string): XsNode | undefined;
  /** Replaces or creates the node; returns the stored record with its new generation. */
  write(path: string, content: NodeContent): XsNode;
  /** Deletes the node (not its children: callers walk the subtree). */
  remove(path: string): void;
  /**
   * Reports a change to `path`. `readers` are the permission lists that let a connection see it
   * (used by the global view; a transaction recomputes them at commit, like xenstored).
   */
  changed(path: string, exact: boolean, readers: ReadonlyArray<readonly Permission[]>): void;
}

/** What a transaction knows about one node it touched (struct accessed_node). */
interface Accessed {
  /** Generation at first access, or NO_GENERATION when the node was missing. */
  readonly generation: number;
  /** The first access was a read, so commit checks the generation. */
  readonly checkGen: boolean;
  /** Permissions at first access (the "old" permissions for watch events). */
  readonly firstPerms: readonly Permission[] | undefined;
  modified: boolean;
  /** The transaction's version of the node; undefined when missing or deleted. */
  node: XsNode | undefined;
  fireWatch: boolean;
  watchExact: boolean;
}

/** An open transaction of one connection. */
export interface Transaction {
  readonly id: number;
  /** In first-access order. */
  readonly accessed: Map<string, Accessed>;
}

export function createTransaction(id: number): Transaction {
  return { id, accessed: new Map() };
}

/** The view that changes the data base directly and hands each change to `emit` at once. */
export function globalView(store: Store, emit: (event: FireEvent) => void): TreeView {
  return {
    read: (path) => store.nodes.get(path),
    write(path, content) {
      store.generation += 1;
      const node: XsNode = { ...content, generation: store.generation };
      store.nodes.set(path, node);
      return node;
    },
    remove(path) {
      store.nodes.delete(path);
    },
    changed(path, exact, readers) {
      emit({ path, exact, readers });
    },
  };
}

/** The view of transaction `tx`: reads fall through to the data base once, then stick. */
export function transactionView(store: Store, tx: Transaction): TreeView {
  const introduce = (path: string, checkGen: boolean): Accessed => {
    const current = store.nodes.get(path);
    const entry: Accessed = {
      generation: current?.generation ?? NO_GENERATION,
      checkGen,
      firstPerms: current?.perms,
      modified: false,
      node: current,
      fireWatch: false,
      watchExact: false,
    };
    tx.accessed.set(path, entry);
    return entry;
  };
  return {
    read(path) {
      return (tx.accessed.get(path) ?? introduce(path, true)).node;
    },
    write(path, content) {
      const entry = tx.accessed.get(path) ?? introduce(path, false);
      store.generation += 1;
      entry.node = { ...content, generation: store.generation };
      entry.modified = true;
      return entry.node;
    },
    remove(path) {
      const entry = tx.accessed.get(path) ?? introduce(path, false);
      entry.node = undefined;
      entry.modified = true;
    },
    changed(path, exact) {
      // queue_watches(): a non-exact event replaces an exact one, not the other way round.
      const entry = tx.accessed.get(path) ?? introduce(path, false);
      if (!entry.fireWatch) {
        entry.fireWatch = true;
        entry.watchExact = exact;
      } else if (!exact) {
        entry.watchExact = false;
      }
    },
  };
}

/** True when committing `tx` now would not conflict (the generation check of finalize_transaction()). */
export function canCommit(store: Store, tx: Transaction): boolean {
  for (const [path, entry] of tx.accessed) {
    if (!entry.checkGen) continue;
    const current = store.nodes.get(path)?.generation ?? NO_GENERATION;
    if (current !== entry.generation) return false;
  }
  return true;
}

/**
 * Commits `tx`: returns false (and changes nothing) on a conflict; otherwise applies every
 * modified node in first-access order and hands each queued watch event to `emit`, judged on the
 * node's old permissions, its new ones and its parent's (watch_permitted()).
 */
export function commitTransaction(store: Store, tx: Transaction, emit: (event: FireEvent) => void): boolean {
  if (!canCommit(store, tx)) return false;
  for (const [path, entry] of tx.accessed) {
    if (entry.modified) {
      if (entry.node) {
        store.generation += 1;
        store.nodes.set(path, { ...entry.node, generation: store.generation });
      } else {
        store.nodes.delete(path);
      }
    }
    if (!entry.fireWatch) continue;
    const readers: (readonly Permission[])[] = [];
    if (entry.firstPerms) readers.push(entry.firstPerms);
    const node = store.nodes.get(path);
    if (node) {
      readers.push(node.perms);
      const parent = store.nodes.get(parentOf(path));
      if (parent) readers.push(parent.perms);
    }
    emit({ path, exact: entry.watchExact, readers });
  }
  return true;
}
