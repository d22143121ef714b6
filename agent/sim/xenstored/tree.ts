/*
 * The simulated xenstored's data base: a flat map from canonical path to immutable node records
 * (value, permission list, children in creation order, generation), plus the global generation
 * counter. Layer: pure (no I/O, no timers).
 * Invariants: records are never mutated, only replaced, so a transaction may hold on to one;
 * every replacement gets a fresh generation from the store's counter (mirrors access_node() in
 * xenstored_transaction.c); the special nodes "@introduceDomain" and "@releaseDomain" live in the
 * same map but are nobody's child (mirrors setup_structure() in xenstored_core.c).
 */
import type { Permission } from '../../xenstore/perms.js';

/** One node of the tree. */
export interface XsNode {
  readonly value: Buffer;
  readonly perms: readonly Permission[];
  readonly children: readonly string[];
  readonly generation: number;
}

/** A node's content without its generation (what writers supply). */
export type NodeContent = Omit<XsNode, 'generation'>;

/** The generation recorded for a node found missing (NO_GENERATION in xenstored). */
export const NO_GENERATION = -1;

export interface Store {
  readonly nodes: Map<string, XsNode>;
  /** Last generation handed out; incremented for every node written. */
  generation: number;
}

/** The special watch paths xenstored fires itself. */
export const SPECIAL_PATHS = ['@introduceDomain', '@releaseDomain'] as const;
export type SpecialPath = (typeof SPECIAL_PATHS)[number];

const dom0Only: readonly Permission[] = [{ domid: 0, access: 'none' }];

/**
 * The initial tree: "/", "/local", "/local/domain", "/tool", "/tool/xenstored" and the two
 * special nodes, all owned by dom0 with no access for others (setup_structure()).
 */
export function createStore(): Store {
  const store: Store = { nodes: new Map(), generation: 0 };
  const put = (path: string, children: string[]): void => {
    store.generation += 1;
    store.nodes.set(path, { value: Buffer.alloc(0), perms: dom0Only, children, generation: store.generation });
  };
  put('/', ['local', 'tool']);
  put('/local', ['domain']);
  put('/local/domain', []);
  put('/tool', ['xenstored']);
  put('/tool/xenstored', []);
  for (const special of SPECIAL_PATHS) put(special, []);
  return store;
}

/** The parent of a canonical path; "/" for top-level and special paths (get_parent()). */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

/** The last component of a canonical path other than "/" (basename() in xenstored_core.c). */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The canonical path of child `name` of `parent` (child_name()). */
export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** The child list as xenstored stores it and DIRECTORY sends it: "a\0b\0". */
export function childrenBytes(node: XsNode | NodeContent): Buffer {
  return Buffer.from(node.children.map((c) => `${c}\0`).join(''), 'utf8');
}

/** Bytes of struct xs_tdb_record_hdr (u64 generation + three u32, padded to 8). */
const RECORD_HEADER_SIZE = 24;
/** Bytes of one struct xs_permissions (u32 id + enum). */
const PERMISSION_SIZE = 8;

/** The record size xenstored's entry-size quota looks at (write_node_raw()). */
export function recordSize(node: NodeContent): number {
  return RECORD_HEADER_SIZE + node.perms.length * PERMISSION_SIZE + node.value.length + childrenBytes(node).length;
}
