/*
 * XenstoredSim: the simulated xenstored's I/O layer. It serves in-memory connections, Unix
 * sockets and Transport objects, each acting as one domain, over the pure core (core.ts), and
 * offers synchronous dom0 helpers for tests that play the toolstack. Layer: I/O (streams, net).
 * Invariants: frames from one connection are handled in arrival order and answered in that order;
 * a connection's watches and transactions vanish when it closes; an oversized or undecodable
 * request stream closes that connection (as xenstored drops a misbehaving client).
 * Closing: close() drops every connection and listener; nothing is left running afterwards.
 */
import { createServer, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { ConnectionClosedError, errorFromReply, ProtocolError } from '../../xenstore/errors.js';
import { checkPath } from '../../xenstore/paths.js';
import { formatPermission, type Permission, parsePermission } from '../../xenstore/perms.js';
import type { Transport } from '../../xenstore/transport.js';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  nulTerminated,
  PAYLOAD_MAX,
  splitNulStrings,
  XsType,
  type XsTypeNumber,
} from '../../xenstore/wire.js';
import { createDuplexPair } from '../duplex-pair.js';
import { handleFrame, specialEvents } from './core.js';
import { type ConnState, closeConnection, createState, type Delivery, openConnection } from './state.js';

export interface SimConnectOptions {
  /** The domain the connection acts as; 0 is privileged dom0. */
  readonly domid: number;
  /**
   * Serve the connection as the Linux xenbus device (/dev/xen/xenbus) passes requests on:
   * a request reaches xenstored on a later turn, with the payload that is then in the
   * connection's one message buffer, which every later request overwrites. A client that
   * writes a request before the previous reply gets mangled requests, as on real Xen (see
   * Transport.oneRequestAtATime).
   */
  readonly xenbusDevice?: boolean;
}

/** What a request hook sees of one client request (see XenstoredSim.onRequest). */
export interface SimRequest {
  readonly domid: number;
  readonly type: XsTypeNumber;
  readonly txId: number;
  /** The first NUL-terminated string of the payload: the path, for path operations. */
  readonly path: string;
}

/** 'drop': close that client's connection instead of answering (xenstored going away, a lost link). */
export type SimRequestHook = (request: SimRequest) => 'drop' | undefined;

export interface SimTransportOptions {
  readonly domid: number;
  /** What Transport.relativePaths reports; defaults to true for guests, false for dom0. */
  readonly relativePaths?: boolean;
  /** Connections act as the guest's xenbus device (see SimConnectOptions.xenbusDevice). */
  readonly xenbusDevice?: boolean;
}

function checkDomid(domid: unknown): number {
  if (typeof domid !== 'number' || !Number.isInteger(domid) || domid < 0 || domid > 0xffff) {
    throw new RangeError(`expected a domid in 0..65535, got ${String(domid)} (${typeof domid})`);
  }
  return domid;
}

/** An in-memory xenstored with the semantics of C xenstored (Xen 4.17). */
export class XenstoredSim {
  readonly #state = createState();
  /** The helpers' own dom0 connection: never registered, so it gets no watch events. */
  readonly #toolstack: ConnState = openConnection(this.#state, 0, false);
  /** Server-side stream of every live connection. */
  readonly #links = new Map<ConnState, Duplex>();
  readonly #servers = new Set<Server>();
  #closed = false;
  #hook: SimRequestHook | undefined;

  /** Number of live client connections (in-memory and socket). */
  get connectionCount(): number {
    return this.#links.size;
  }

  /**
   * Opens a new in-memory connection acting as `domid`; the returned end is the client's.
   * @throws RangeError for a bad domid; ConnectionClosedError after close().
   */
  connect(options: SimConnectOptions): Duplex {
    const domid = checkDomid(options?.domid);
    if (this.#closed) throw new ConnectionClosedError('simulated xenstored is closed');
    const [client, server] = createDuplexPair();
    this.#attach(server, domid, options.xenbusDevice ?? false);
    return client;
  }

  /**
   * Serves a Unix socket at `socketPath`; every accepted connection acts as `domid` (dom0's
   * /run/xenstored/socket is `{ domid: 0 }`). Resolves once listening.
   * @throws RangeError for a bad domid; rejects with the listen error (e.g. EADDRINUSE).
   */
  async listen(socketPath: string, options: SimConnectOptions): Promise<void> {
    const domid = checkDomid(options?.domid);
    if (this.#closed) throw new ConnectionClosedError('simulated xenstored is closed');
    const server = createServer((socket) => this.#attach(socket, domid, options.xenbusDevice ?? false));
    this.#servers.add(server);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      this.#servers.delete(server);
      throw error;
    }
    // Accept errors after this point only cost that one connection attempt.
    server.on('error', () => {});
  }

  /**
   * A Transport whose connect() opens a fresh in-memory connection acting as `domid`.
   * @throws RangeError for a bad domid.
   */
  transport(options: SimTransportOptions): Transport {
    const domid = checkDomid(options?.domid);
    const description = `simulated xenstored (domain ${domid})`;
    return {
      description,
      relativePaths: options.relativePaths ?? domid !== 0,
      oneRequestAtATime: options.xenbusDevice ?? false,
      connect: async (signal?: AbortSignal): Promise<Duplex> => {
        signal?.throwIfAborted();
        if (this.#closed) throw new ConnectionClosedError(`${description} is closed`);
        return this.connect({ domid, xenbusDevice: options.xenbusDevice ?? false });
      },
    };
  }

  /** Marks `domid` introduced and fires @introduceDomain (as the toolstack's XS_INTRODUCE would). */
  introduceDomain(domid: number): void {
    this.#state.introduced.add(checkDomid(domid));
    this.#deliverAll(specialEvents(this.#state, '@introduceDomain'));
  }

  /** Marks `domid` released and fires @releaseDomain (its connections stay open). */
  releaseDomain(domid: number): void {
    this.#state.introduced.delete(checkDomid(domid));
    this.#deliverAll(specialEvents(this.#state, '@releaseDomain'));
  }

  /**
   * Writes a node as dom0 (creating missing ancestors) and fires watches; with `perms`, also sets
   * its permissions, in one transaction so watchers see one event.
   * @throws XenstoreError with the errno xenstored gave (EINVAL for a bad path, ...).
   */
  write(path: string, value: string | Buffer, perms?: readonly Permission[]): void {
    const data = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    const payload = Buffer.concat([Buffer.from(`${path}\0`, 'utf8'), data]);
    if (!perms) {
      this.#call('write', path, XsType.WRITE, payload);
      return;
    }
    const txId = Number(splitNulStrings(this.#call('write', path, XsType.TRANSACTION_START, nulTerminated('')))[0]);
    try {
      this.#call('write', path, XsType.WRITE, payload, txId);
      this.#call('write', path, XsType.SET_PERMS, nulTerminated(path, ...perms.map(formatPermission)), txId);
    } catch (error) {
      this.#call('write', path, XsType.TRANSACTION_END, nulTerminated('F'), txId);
      throw error;
    }
    this.#call('write', path, XsType.TRANSACTION_END, nulTerminated('T'), txId);
  }

  /** Creates a node (and missing ancestors) as dom0; an existing node is left alone. @throws XenstoreError */
  mkdir(path: string): void {
    this.#call('mkdir', path, XsType.MKDIR, nulTerminated(path));
  }

  /** Removes a node and its subtree as dom0. @throws XenstoreError (ENOENT when the parent is missing too) */
  rm(path: string): void {
    this.#call('rm', path, XsType.RM, nulTerminated(path));
  }

  /** Sets a node's permissions as dom0 (special paths such as "@releaseDomain" allowed). @throws XenstoreError */
  setPerms(path: string, perms: readonly Permission[]): void {
    this.#call('set_perms', path, XsType.SET_PERMS, nulTerminated(path, ...perms.map(formatPermission)));
  }

  /** A node's value, or undefined when it does not exist. @throws XenstoreError for a bad path */
  read(path: string): Buffer | undefined {
    return this.#callUnlessMissing('read', path, XsType.READ, nulTerminated(path));
  }

  /** A node's permission list, or undefined when it does not exist. @throws XenstoreError */
  getPerms(path: string): Permission[] | undefined {
    const reply = this.#callUnlessMissing('get_perms', path, XsType.GET_PERMS, nulTerminated(path));
    return reply && splitNulStrings(reply).map((text) => parsePermission(text) as Permission);
  }

  /** A node's children in creation order, or undefined when it does not exist (any size). @throws XenstoreError */
  directory(path: string): string[] | undefined {
    const kind = checkPath(path, 'directory', { allowRelative: true, allowSpecial: false });
    const node = this.#state.store.nodes.get(kind === 'relative' ? `${this.#toolstack.home}/${path}` : path);
    return node ? [...node.children] : undefined;
  }

  /**
   * Fault injection for tests: `hook` sees every client request before it is handled and may
   * change the store (through the dom0 helpers) or drop that connection; undefined removes it.
   */
  onRequest(hook: SimRequestHook | undefined): void {
    this.#hook = hook;
  }

  /** Closes every live connection abruptly; the clients see 'end' and 'close'. */
  dropConnections(): void {
    for (const [conn, stream] of this.#links) {
      this.#links.delete(conn);
      closeConnection(this.#state, conn);
      stream.destroy();
    }
  }

  /** Closes every connection and listener; later connect() and listen() calls fail. */
  async close(): Promise<void> {
    this.#closed = true;
    this.dropConnections();
    const servers = [...this.#servers];
    this.#servers.clear();
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  #attach(stream: Duplex, domid: number, xenbusDevice: boolean): void {
    if (this.#closed) {
      stream.destroy();
      return;
    }
    const conn = openConnection(this.#state, domid);
    this.#links.set(conn, stream);
    const decoder = new FrameDecoder();
    const handle = (frame: Frame): void => {
      if (this.#links.get(conn) !== stream) return;
      const path = frame.payload.subarray(0, Math.max(0, frame.payload.indexOf(0))).toString('utf8');
      if (this.#hook?.({ domid, type: frame.type as XsTypeNumber, txId: frame.txId, path }) === 'drop') {
        this.#drop(conn, stream);
        return;
      }
      this.#deliverAll(handleFrame(this.#state, conn, frame));
    };
    const receive = xenbusDevice ? deviceBuffered(handle) : handle;
    stream.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        this.#drop(conn, stream);
        return;
      }
      for (const frame of frames) receive(frame);
    });
    // A broken connection just ends; 'close' follows and cleans up.
    stream.on('error', () => {});
    stream.on('close', () => {
      if (this.#links.get(conn) === stream) this.#drop(conn, stream);
    });
  }

  #drop(conn: ConnState, stream: Duplex): void {
    this.#links.delete(conn);
    closeConnection(this.#state, conn);
    stream.destroy();
  }

  #deliverAll(deliveries: readonly Delivery[]): void {
    for (const { conn, frame } of deliveries) {
      const stream = this.#links.get(conn);
      if (stream && !stream.destroyed && stream.writable) stream.write(encodeFrame(frame));
    }
  }

  /** Runs one request as the helpers' dom0 connection; returns the reply payload. */
  #call(op: string, path: string, type: XsTypeNumber, payload: Buffer, txId = 0): Buffer {
    const reply = this.#request(type, payload, txId);
    if (reply.type === XsType.ERROR) throw errorFromReply(reply.payload, op, path);
    return reply.payload;
  }

  #callUnlessMissing(op: string, path: string, type: XsTypeNumber, payload: Buffer): Buffer | undefined {
    const reply = this.#request(type, payload, 0);
    if (reply.type !== XsType.ERROR) return reply.payload;
    const error = errorFromReply(reply.payload, op, path);
    if (error.code === 'ENOENT') return undefined;
    throw error;
  }

  #request(type: XsTypeNumber, payload: Buffer, txId: number): Frame {
    let reply: Frame | undefined;
    const others: Delivery[] = [];
    for (const delivery of handleFrame(this.#state, this.#toolstack, { type, reqId: 0, txId, payload })) {
      if (delivery.conn === this.#toolstack) reply = delivery.frame;
      else others.push(delivery);
    }
    this.#deliverAll(others);
    if (!reply) throw new Error(`bug: no reply to a ${type} request`);
    return reply;
  }
}

/**
 * The Linux xenbus device's request path (drivers/xen/xenbus: xenbus_file_write() keeps the
 * message in the open file's buffer and queues it with its payload still pointing there;
 * xenbus_thread copies it to the ring later). Requests are passed to `handle` on a later
 * turn, each with its own header and whatever the shared buffer holds by then.
 */
function deviceBuffered(handle: (frame: Frame) => void): (frame: Frame) => void {
  const buffer = Buffer.alloc(PAYLOAD_MAX);
  const queued: Frame[] = [];
  return (frame) => {
    frame.payload.copy(buffer);
    queued.push(frame);
    if (queued.length > 1) return;
    setImmediate(() => {
      for (const { type, reqId, txId, payload } of queued.splice(0)) {
        handle({ type, reqId, txId, payload: Buffer.from(buffer.subarray(0, payload.length)) });
      }
    });
  };
}
