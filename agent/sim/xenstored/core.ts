/*
 * The request logic of the simulated xenstored: handleFrame(state, conn, frame) runs one request
 * and returns, in order, every frame to send: the one reply to `conn` and watch events for any
 * connection. Layer: pure (state is mutated in place; no I/O, no timers).
 * Invariants: the reply carries the request's req_id and tx_id; a failed request changes nothing
 * (TRANSACTION_END still ends the transaction) and gets XS_ERROR "<ERRNO>\0"; events an operation
 * causes precede its reply (fire_watches() runs before send_ack()); WATCH's first event follows it.
 * Spec: docs/misc/xenstore.txt, io/xs_wire.h, C xenstored 4.17 (upstream function per handler).
 */
import { type XenstoreErrno, XenstoreError } from '../../xenstore/errors.js';
import { checkPath } from '../../xenstore/paths.js';
import { formatPermission, type Permission, parsePermission } from '../../xenstore/perms.js';
import {
  type Frame,
  nulTerminated,
  PAYLOAD_MAX,
  REL_PATH_MAX,
  splitAtFirstNul,
  typeName,
  XsType,
} from '../../xenstore/wire.js';
import { isPrivileged, PERM_OWNER, PERM_READ, PERM_WRITE, permFor } from './access.js';
import type { ConnState, Delivery, SimState, Watch } from './state.js';
import {
  commitTransaction,
  createTransaction,
  globalView,
  type Transaction,
  type TreeView,
  transactionView,
} from './transaction.js';
import {
  baseName,
  childPath,
  childrenBytes,
  type NodeContent,
  parentOf,
  recordSize,
  type SpecialPath,
  type XsNode,
} from './tree.js';
import { eventPath, type FireEvent, watchEventFrame, watchEvents } from './watches.js';

/** Quotas of C xenstored 4.17 (quota_* in xenstored_core.c); they bind unprivileged callers only. */
export const QUOTAS = {
  /** quota_max_transaction: a connection may start a transaction while it has at most this many open. */
  maxTransactions: 10,
  /** quota_nb_watch_per_domain: WATCH fails while the domain already has more than this many. */
  maxWatches: 128,
  /** quota_max_entry_size: a written node record must stay below this many bytes. */
  maxEntrySize: 2048,
  /** quota_nb_perms_per_node */
  maxPermsPerNode: 5,
} as const;

/** DOMID_SELF of xen.h: IS_DOMAIN_INTRODUCED answers T for it. */
const DOMID_SELF = 0x7ff0;

/** Everything a handler needs for one request. */
interface Request {
  readonly state: SimState;
  readonly conn: ConnState;
  readonly frame: Frame;
  readonly op: string;
  /** The transaction named by tx_id (undefined for tx_id 0 and for WATCH/UNWATCH). */
  readonly tx: Transaction | undefined;
  readonly view: TreeView;
  readonly emit: (event: FireEvent) => void;
  readonly send: (delivery: Delivery) => void;
  readonly reply: (payload: Buffer) => void;
}

interface Handler {
  readonly run: (req: Request) => void;
  /** XS_FLAG_NOTID: the transaction id is ignored. */
  readonly noTxId?: boolean;
  /** XS_FLAG_PRIV: privileged callers only (others get EACCES). */
  readonly privileged?: boolean;
}

const OK = nulTerminated('OK');

function fail(req: Pick<Request, 'op'>, code: XenstoreErrno, detail: string, path?: string): never {
  throw new XenstoreError(code, req.op, path, detail, 'xenstored');
}

/** The strings of a payload that are NUL-terminated; bytes after the last NUL are ignored (get_strings()). */
function nulStrings(payload: Buffer): string[] {
  const out: string[] = [];
  let start = 0;
  for (let end = payload.indexOf(0, start); end !== -1; end = payload.indexOf(0, start)) {
    out.push(payload.toString('utf8', start, end));
    start = end + 1;
  }
  return out;
}

/** The single argument of a payload that must hold exactly one NUL, at its end (onearg()). */
function oneArg(payload: Buffer): string | undefined {
  if (payload.length === 0 || payload.indexOf(0) !== payload.length - 1) return undefined;
  return payload.toString('utf8', 0, payload.length - 1);
}

/** C's atoi(): optional blanks and sign, then digits; 0 when there are none. */
function atoi(text: string): number {
  const match = /^[\t\n\v\f\r ]*([+-]?\d+)/.exec(text);
  return match ? Number.parseInt(match[1] as string, 10) : 0;
}

/**
 * Validates a path and makes it absolute against the connection's home (canonicalize() and
 * is_valid_nodename()): EINVAL for anything paths.ts rejects, and for paths longer than
 * REL_PATH_MAX once a "/local/domain/<id>/" prefix is discounted.
 */
function canonicalize(req: Request, raw: string | undefined, allowSpecial: boolean): string {
  if (raw === undefined) fail(req, 'EINVAL', 'malformed payload');
  let kind: ReturnType<typeof checkPath>;
  try {
    kind = checkPath(raw, req.op, { allowRelative: true, allowSpecial });
  } catch (error) {
    if (error instanceof XenstoreError) fail(req, 'EINVAL', error.message, raw);
    throw error;
  }
  if (kind === 'special') return raw;
  const name = kind === 'relative' ? `${req.conn.home}/${raw}` : raw;
  const localPrefix = /^\/local\/domain\/\d{1,5}\//.exec(name);
  if (name.length - (localPrefix ? localPrefix[0].length : 0) > REL_PATH_MAX) fail(req, 'EINVAL', 'path too long', raw);
  return name;
}

/** The permission bits the caller has on the nearest existing ancestor of `name` (ask_parents()). */
function askParents(req: Request, name: string): number {
  let path = name;
  do {
    path = parentOf(path);
    const node = req.view.read(path);
    if (node) return permFor(req.conn.domid, node.perms);
  } while (path !== '/');
  return 0;
}

type Lookup = { node: XsNode; error?: undefined } | { node?: undefined; error: 'ENOENT' | 'EACCES' };

/**
 * Reads a node the caller needs `perm` on (get_node() with errno_from_parents()): EACCES when the
 * node exists without that access, ENOENT when it is missing, unless the nearest existing
 * ancestor grants none of `perm`, in which case EACCES hides whether the node exists.
 */
function lookup(req: Request, name: string, perm: number): Lookup {
  const node = req.view.read(name);
  if (node && (permFor(req.conn.domid, node.perms) & perm) === perm) return { node };
  const error = node ? 'EACCES' : 'ENOENT';
  return { error: askParents(req, name) & perm ? error : 'EACCES' };
}

function mustLookup(req: Request, name: string, perm: number): XsNode {
  const found = lookup(req, name, perm);
  if (found.error) fail(req, found.error, found.error === 'ENOENT' ? 'no such node' : 'permission denied', name);
  return found.node;
}

/** The entry-size quota of write_node_raw(), for unprivileged callers. */
function checkEntrySize(req: Request, path: string, content: NodeContent): void {
  if (!isPrivileged(req.conn.domid) && recordSize(content) >= QUOTAS.maxEntrySize) {
    fail(req, 'ENOSPC', 'node too large', path);
  }
}

/**
 * Creates `name` and its missing ancestors below the nearest existing one (construct_node() and
 * create_node()): new nodes inherit their parent's permissions, and an unprivileged caller
 * becomes their owner. Returns the new node and its parent's permissions.
 */
function createNode(req: Request, name: string, value: Buffer): { node: XsNode; parentPerms: readonly Permission[] } {
  const missing: string[] = [name];
  let ancestorPath = parentOf(name);
  let ancestor = req.view.read(ancestorPath);
  while (!ancestor) {
    if (ancestorPath === '/') fail(req, 'EIO', 'no root node', name);
    missing.unshift(ancestorPath);
    ancestorPath = parentOf(ancestorPath);
    ancestor = req.view.read(ancestorPath);
  }
  // Top-down: the existing ancestor gains a child, then each new level.
  const writes: [string, NodeContent][] = [];
  let upper: NodeContent = { ...ancestor, children: [...ancestor.children, baseName(missing[0] as string)] };
  writes.push([ancestorPath, upper]);
  missing.forEach((path, i) => {
    const next = missing[i + 1];
    const [first, ...rest] = upper.perms;
    const perms: Permission[] = first === undefined ? [] : [first, ...rest];
    if (first !== undefined && !isPrivileged(req.conn.domid))
      perms[0] = { domid: req.conn.domid, access: first.access };
    const content: NodeContent = {
      value: next === undefined ? value : Buffer.alloc(0),
      perms,
      children: next === undefined ? [] : [baseName(next)],
    };
    writes.push([path, content]);
    upper = content;
  });
  for (const [path, content] of writes) checkEntrySize(req, path, content);
  // xenstored writes bottom-up: the new node first, the existing ancestor last.
  let node: XsNode | undefined;
  for (const [path, content] of [...writes].reverse()) {
    const written = req.view.write(path, content);
    node ??= written;
  }
  const parent = writes[writes.length - 2]?.[1] as NodeContent;
  return { node: node as XsNode, parentPerms: parent.perms };
}

/** Readers of a change to an existing node: the node, then its parent (watch_permitted()). */
function readersOf(req: Request, path: string, perms: readonly Permission[], old?: readonly Permission[]) {
  const readers: (readonly Permission[])[] = old ? [old, perms] : [perms];
  const parent = req.view.read(parentOf(path));
  if (parent) readers.push(parent.perms);
  return readers;
}

/** DIRECTORY: send_directory(). */
function doDirectory(req: Request): void {
  const name = canonicalize(req, oneArg(req.frame.payload), false);
  const node = mustLookup(req, name, PERM_READ);
  req.reply(childrenBytes(node));
}

/** DIRECTORY_PART "path\0offset\0": send_directory_part(). */
function doDirectoryPart(req: Request): void {
  const args = nulStrings(req.frame.payload);
  if (args.length !== 2) fail(req, 'EINVAL', 'expected path and offset');
  const name = canonicalize(req, args[0], false);
  const node = mustLookup(req, name, PERM_READ);
  const children = childrenBytes(node);
  const offset = atoi(args[1] as string);
  const gen = Buffer.from(`${node.generation}\0`);
  // An offset past the end (or negative, which C reads as a huge unsigned) gets an empty list.
  if (offset < 0 || offset >= children.length) {
    req.reply(Buffer.concat([gen, Buffer.from([0])]));
    return;
  }
  const maxLen = PAYLOAD_MAX - gen.length - 1;
  let len = 0;
  for (;;) {
    const start = offset + len;
    const nul = children.indexOf(0, start);
    const nameLen = (nul === -1 ? children.length : nul) - start;
    if (len + nameLen >= maxLen) break;
    len += nameLen + 1;
    if (offset + len >= children.length) break;
  }
  const parts = [gen, children.subarray(offset, offset + len)];
  if (offset + len >= children.length) parts.push(Buffer.from([0]));
  req.reply(Buffer.concat(parts));
}

/** READ: do_read(). */
function doRead(req: Request): void {
  const name = canonicalize(req, oneArg(req.frame.payload), false);
  req.reply(mustLookup(req, name, PERM_READ).value);
}

/** GET_PERMS: do_get_perms() (special paths allowed). */
function doGetPerms(req: Request): void {
  const name = canonicalize(req, oneArg(req.frame.payload), true);
  const node = mustLookup(req, name, PERM_READ);
  req.reply(nulTerminated(...node.perms.map(formatPermission)));
}

/** WRITE "path\0value": do_write(). */
function doWrite(req: Request): void {
  const split = splitAtFirstNul(req.frame.payload);
  if (!split) fail(req, 'EINVAL', 'expected path\\0value');
  const name = canonicalize(req, split[0], false);
  const value = Buffer.from(split[1]);
  const found = lookup(req, name, PERM_WRITE);
  if (found.error === 'EACCES') fail(req, 'EACCES', 'permission denied', name);
  if (found.node) {
    const content: NodeContent = { ...found.node, value };
    checkEntrySize(req, name, content);
    const node = req.view.write(name, content);
    req.view.changed(name, false, readersOf(req, name, node.perms));
  } else {
    const { node, parentPerms } = createNode(req, name, value);
    req.view.changed(name, false, [node.perms, parentPerms]);
  }
  req.reply(OK);
}

/** MKDIR: do_mkdir(); an existing node is left alone (but still needs write access). */
function doMkdir(req: Request): void {
  const name = canonicalize(req, oneArg(req.frame.payload), false);
  const found = lookup(req, name, PERM_WRITE);
  if (found.error === 'EACCES') fail(req, 'EACCES', 'permission denied', name);
  if (!found.node) {
    const { node, parentPerms } = createNode(req, name, Buffer.alloc(0));
    req.view.changed(name, false, [node.perms, parentPerms]);
  }
  req.reply(OK);
}

/**
 * Removes `name` and its subtree (rm_node(), walk_node_tree(), delnode_sub()): children before
 * parents; each removed node fires with the permissions it had, the subtree's root for watches
 * on it and above, every other node for watches on exactly that node.
 */
function removeSubtree(req: Request, name: string): void {
  const parentPath = parentOf(name);
  const parent = req.view.read(parentPath);
  if (!parent) fail(req, 'EINVAL', 'parent missing', name);
  const walk = (path: string, node: XsNode, parentPerms: readonly Permission[]): void => {
    for (const child of node.children) {
      const sub = childPath(path, child);
      const subNode = req.view.read(sub);
      if (subNode) walk(sub, subNode, node.perms);
    }
    req.view.remove(path);
    req.view.changed(path, path !== name, [node.perms, parentPerms]);
  };
  walk(name, req.view.read(name) as XsNode, parent.perms);
  const base = baseName(name);
  if (!parent.children.includes(base)) fail(req, 'EIO', `child ${base} missing from its parent`, name);
  req.view.write(parentPath, { ...parent, children: parent.children.filter((c) => c !== base) });
}

/** RM: do_rm(); a missing node is fine when its parent exists. */
function doRm(req: Request): void {
  const name = canonicalize(req, oneArg(req.frame.payload), false);
  const found = lookup(req, name, PERM_WRITE);
  if (found.error === 'EACCES') fail(req, 'EACCES', 'permission denied', name);
  if (!found.node) {
    if (req.view.read(parentOf(name))) {
      req.reply(OK);
      return;
    }
    fail(req, 'ENOENT', 'no such node', name);
  }
  if (name === '/') fail(req, 'EINVAL', 'cannot remove the root', name);
  removeSubtree(req, name);
  req.reply(OK);
}

/** SET_PERMS "path\0perm\0perm\0...": do_set_perms() (special paths allowed; owner or dom0 only). */
function doSetPerms(req: Request): void {
  const args = nulStrings(req.frame.payload);
  if (args.length < 2) fail(req, 'EINVAL', 'expected path and permissions');
  const [path, ...texts] = args;
  if (!isPrivileged(req.conn.domid) && texts.length > QUOTAS.maxPermsPerNode)
    fail(req, 'ENOSPC', 'too many permissions');
  const perms: Permission[] = [];
  for (const text of texts) {
    const perm = parsePermission(text);
    if (!perm) fail(req, 'EINVAL', `bad permission ${JSON.stringify(text)}`, path);
    perms.push(perm);
  }
  const name = canonicalize(req, path, true);
  const node = mustLookup(req, name, PERM_WRITE | PERM_OWNER);
  if (!isPrivileged(req.conn.domid) && perms[0]?.domid !== node.perms[0]?.domid) {
    fail(req, 'EPERM', 'only dom0 may change the owner', name);
  }
  const content: NodeContent = { ...node, perms };
  checkEntrySize(req, name, content);
  req.view.write(name, content);
  req.view.changed(name, false, readersOf(req, name, perms, node.perms));
  req.reply(OK);
}

/** GET_DOMAIN_PATH "domid\0": do_get_domain_path(). */
function doGetDomainPath(req: Request): void {
  const arg = oneArg(req.frame.payload);
  if (arg === undefined) fail(req, 'EINVAL', 'expected a domid');
  req.reply(nulTerminated(`/local/domain/${atoi(arg) >>> 0}`));
}

function countDomainWatches(state: SimState, domid: number): number {
  let n = 0;
  for (const conn of state.connections) if (conn.domid === domid) n += conn.watches.length;
  return n;
}

/** WATCH "path\0token\0": do_watch(); acknowledged, then fired once with the path as registered. */
function doWatch(req: Request): void {
  const args = nulStrings(req.frame.payload);
  if (args.length !== 2) fail(req, 'EINVAL', 'expected path and token');
  const [raw, token] = args as [string, string];
  const relative = !raw.startsWith('/') && !raw.startsWith('@');
  const path = canonicalize(req, raw, true);
  const { conn } = req;
  if (conn.watches.some((w) => w.path === path && w.token === token)) fail(req, 'EEXIST', 'watch exists', raw);
  if (!isPrivileged(conn.domid) && countDomainWatches(req.state, conn.domid) > QUOTAS.maxWatches) {
    fail(req, 'E2BIG', 'too many watches', raw);
  }
  const watch: Watch = { path, token, relative };
  conn.watches.push(watch);
  req.reply(OK);
  const frame = watchEventFrame(eventPath(watch, conn.home, path), token);
  if (frame) req.send({ conn, frame });
}

/** UNWATCH "path\0token\0": do_unwatch(). */
function doUnwatch(req: Request): void {
  const args = nulStrings(req.frame.payload);
  if (args.length !== 2) fail(req, 'EINVAL', 'expected path and token');
  const [raw, token] = args as [string, string];
  const path = canonicalize(req, raw, true);
  const index = req.conn.watches.findIndex((w) => w.path === path && w.token === token);
  if (index === -1) fail(req, 'ENOENT', 'no such watch', raw);
  req.conn.watches.splice(index, 1);
  req.reply(OK);
}

/** TRANSACTION_START: do_transaction_start(). */
function doTransactionStart(req: Request): void {
  const { conn } = req;
  if (req.tx) fail(req, 'EBUSY', 'nested transactions are not supported');
  // C compares the number already open with ">" (so an 11th may start, a 12th may not).
  if (!isPrivileged(conn.domid) && conn.transactions.size > QUOTAS.maxTransactions) {
    fail(req, 'ENOSPC', 'too many transactions');
  }
  let id = conn.nextTransactionId;
  while (id === 0 || conn.transactions.has(id)) id = (id + 1) >>> 0;
  conn.nextTransactionId = (id + 1) >>> 0;
  conn.transactions.set(id, createTransaction(id));
  req.reply(nulTerminated(String(id)));
}

/** TRANSACTION_END "T\0" (commit) or "F\0" (abort): do_transaction_end(). */
function doTransactionEnd(req: Request): void {
  const arg = oneArg(req.frame.payload);
  if (arg !== 'T' && arg !== 'F') fail(req, 'EINVAL', 'expected T or F');
  const { tx } = req;
  if (!tx) fail(req, 'ENOENT', 'no transaction');
  req.conn.transactions.delete(tx.id);
  if (arg === 'T' && !commitTransaction(req.state.store, tx, req.emit)) fail(req, 'EAGAIN', 'conflict');
  req.reply(OK);
}

/** The events of a special watch: exact, seen by whoever may read the special node or "/". */
export function specialEvents(state: SimState, name: SpecialPath): Delivery[] {
  const node = state.store.nodes.get(name);
  const root = state.store.nodes.get('/');
  if (!node) return [];
  return watchEvents(state.connections, {
    path: name,
    exact: true,
    readers: root ? [node.perms, root.perms] : [node.perms],
  });
}

/** INTRODUCE "domid\0mfn\0port\0" (dom0 only): marks the domain introduced; fires if it was not. */
function doIntroduce(req: Request): void {
  const args = nulStrings(req.frame.payload);
  if (args.length < 3) fail(req, 'EINVAL', 'expected domid, mfn and port');
  const domid = atoi(args[0] as string) >>> 0;
  if (domid === 0 || domid === DOMID_SELF) fail(req, 'EINVAL', 'cannot introduce this domain');
  if (!req.state.introduced.has(domid)) {
    req.state.introduced.add(domid);
    for (const d of specialEvents(req.state, '@introduceDomain')) req.send(d);
  }
  req.reply(OK);
}

/** RELEASE "domid\0" (dom0 only): forgets an introduced domain and fires @releaseDomain. */
function doRelease(req: Request): void {
  const arg = oneArg(req.frame.payload);
  if (arg === undefined) fail(req, 'EINVAL', 'expected a domid');
  const domid = atoi(arg) >>> 0;
  if (domid === 0) fail(req, 'EINVAL', 'cannot release domain 0');
  if (!req.state.introduced.delete(domid)) fail(req, 'ENOENT', `domain ${domid} is not introduced`);
  for (const d of specialEvents(req.state, '@releaseDomain')) req.send(d);
  req.reply(OK);
}

/** IS_DOMAIN_INTRODUCED "domid\0" (dom0 only): "T\0" or "F\0". */
function doIsDomainIntroduced(req: Request): void {
  const arg = oneArg(req.frame.payload);
  if (arg === undefined) fail(req, 'EINVAL', 'expected a domid');
  const domid = atoi(arg) >>> 0;
  req.reply(nulTerminated(domid === DOMID_SELF || req.state.introduced.has(domid) ? 'T' : 'F'));
}

/** RESET_WATCHES: do_reset_watches() drops the connection's watches and transactions. */
function doResetWatches(req: Request): void {
  req.conn.watches.length = 0;
  req.conn.transactions.clear();
  req.reply(OK);
}

function notImplemented(req: Request): void {
  fail(req, 'ENOSYS', `the simulator does not implement ${req.op}`);
}

/** wire_funcs[] of xenstored_core.c; types without an entry (WATCH_EVENT, ERROR) get ENOSYS. */
const handlers = new Map<number, Handler>([
  [XsType.CONTROL, { run: notImplemented, privileged: true }],
  [XsType.DIRECTORY, { run: doDirectory }],
  [XsType.READ, { run: doRead }],
  [XsType.GET_PERMS, { run: doGetPerms }],
  [XsType.WATCH, { run: doWatch, noTxId: true }],
  [XsType.UNWATCH, { run: doUnwatch, noTxId: true }],
  [XsType.TRANSACTION_START, { run: doTransactionStart }],
  [XsType.TRANSACTION_END, { run: doTransactionEnd }],
  [XsType.INTRODUCE, { run: doIntroduce, privileged: true }],
  [XsType.RELEASE, { run: doRelease, privileged: true }],
  [XsType.GET_DOMAIN_PATH, { run: doGetDomainPath }],
  [XsType.WRITE, { run: doWrite }],
  [XsType.MKDIR, { run: doMkdir }],
  [XsType.RM, { run: doRm }],
  [XsType.SET_PERMS, { run: doSetPerms }],
  [XsType.IS_DOMAIN_INTRODUCED, { run: doIsDomainIntroduced, privileged: true }],
  [XsType.RESUME, { run: notImplemented, privileged: true }],
  [XsType.SET_TARGET, { run: notImplemented, privileged: true }],
  [XsType.RESET_WATCHES, { run: doResetWatches }],
  [XsType.DIRECTORY_PART, { run: doDirectoryPart }],
]);

/** The XS_ERROR frame answering `frame` with `code`. */
export function errorFrame(frame: Frame, code: XenstoreErrno): Frame {
  return { type: XsType.ERROR, reqId: frame.reqId, txId: frame.txId, payload: nulTerminated(code) };
}

/**
 * Runs one request of `conn` (process_message()): looks up the handler (ENOSYS when none),
 * checks privilege (EACCES), resolves tx_id (ENOENT when unknown) and runs it.
 * @returns the frames to send, in order: watch events for any connection and the one reply.
 * @throws only on an internal bug; protocol and permission failures become XS_ERROR replies.
 */
export function handleFrame(state: SimState, conn: ConnState, frame: Frame): Delivery[] {
  const out: Delivery[] = [];
  const op = typeName(frame.type) ?? `type ${frame.type}`;
  try {
    const handler = handlers.get(frame.type);
    if (!handler) fail({ op }, 'ENOSYS', `no handler for ${op}`);
    if (handler.privileged && !isPrivileged(conn.domid)) fail({ op }, 'EACCES', `${op} needs dom0`);
    let tx: Transaction | undefined;
    if (!handler.noTxId && frame.txId !== 0) {
      tx = conn.transactions.get(frame.txId);
      if (!tx) fail({ op }, 'ENOENT', `no transaction ${frame.txId}`);
    }
    const emit = (event: FireEvent): void => {
      out.push(...watchEvents(state.connections, event));
    };
    let replied = false;
    const req: Request = {
      state,
      conn,
      frame,
      op,
      tx,
      view: tx ? transactionView(state.store, tx) : globalView(state.store, emit),
      emit,
      send: (delivery) => out.push(delivery),
      reply(payload) {
        if (replied) throw new Error(`bug: second reply to ${op}`);
        replied = true;
        // send_reply(): a reply that does not fit becomes E2BIG.
        const reply =
          payload.length > PAYLOAD_MAX
            ? errorFrame(frame, 'E2BIG')
            : { type: frame.type, reqId: frame.reqId, txId: frame.txId, payload };
        out.push({ conn, frame: reply });
      },
    };
    handler.run(req);
    if (!replied) throw new Error(`bug: ${op} sent no reply`);
  } catch (error) {
    if (!(error instanceof XenstoreError) || error.origin !== 'xenstored') throw error;
    out.push({ conn, frame: errorFrame(frame, error.code) });
  }
  return out;
}
