/*
 * XenstoreClient: one connection to xenstored over any Transport, with many requests in
 * flight (matched by req_id in a Map), watch events routed to Watch iterators by token, a
 * bounded transaction() helper, and optional reconnection.
 * Layer: I/O over an injected transport and clock; no literal system paths here.
 * Invariants: a req_id is unique among requests in flight; on a transport that takes one
 * request at a time, a request is written only once every earlier one is answered (the rest
 * wait, in order, in `unsent`); watch events never resolve a
 * request; a reply with an unknown req_id, or an undecodable stream, is a ProtocolError that
 * drops the connection; only the current connection (epoch) may settle requests.
 * Closing rejects every pending request with ConnectionClosedError and ends every watch.
 * When the connection is lost, pending requests are rejected; with a retryStrategy the client
 * reconnects and re-registers its watches, which fire once on registration (so a watcher
 * always rescans after a reconnect); without one, watches end with ConnectionClosedError.
 * Spec: Xen docs/misc/xenstore.txt, io/xs_wire.h.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { type Clock, systemClock } from '../clock.js';
import { ConnectionClosedError, errorFromReply, ProtocolError, XenstoreError } from './errors.js';
import { checkPath } from './paths.js';
import { formatPermission, type Permission, parsePermission } from './perms.js';
import type { Transport } from './transport.js';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  firstString,
  nulTerminated,
  PAYLOAD_MAX,
  splitNulStrings,
  typeName,
  XsType,
  type XsTypeNumber,
} from './wire.js';

/** A watch firing: the path that changed (relative if the watch was) and the watch's token. */
export interface WatchEvent {
  readonly path: string;
  readonly token: string;
}

export interface XenstoreClientOptions {
  transport: Transport;
  clock?: Clock;
  /**
   * After the connection is lost: how long to wait before reconnect attempt `attempt`
   * (1-based), or null to give up. Default: never reconnect.
   */
  retryStrategy?: (attempt: number) => number | null;
  /** How many times transaction() runs its function before giving up on EAGAIN (default 8). */
  maxTransactionAttempts?: number;
  /** Aborts the initial connect. */
  signal?: AbortSignal;
}

/** Events: 'reconnecting' {attempt, delayMs, cause}, 'reconnected', 'close' (error | undefined). */
export interface XenstoreClientEvents {
  reconnecting: [info: { attempt: number; delayMs: number; cause: unknown }];
  reconnected: [];
  close: [error: Error | undefined];
}

type Send = (type: XsTypeNumber, payload: Buffer, txId: number, op: string, path?: string) => Promise<Buffer>;

const WATCH_QUEUE_MAX = 1024;

/**
 * The operations available both directly on a client and inside a transaction: every method
 * validates its path and payload size before anything is sent.
 */
export class XenstoreOperations {
  protected readonly send: Send;
  protected readonly txId: number;
  readonly relativePaths: boolean;

  protected constructor(send: Send, txId: number, relativePaths: boolean) {
    this.send = send;
    this.txId = txId;
    this.relativePaths = relativePaths;
  }

  /** The value at `path` decoded as UTF-8. @throws XenstoreError ENOENT, EACCES, EINVAL */
  async read(path: string): Promise<string> {
    return (await this.readBuffer(path)).toString('utf8');
  }

  /** The raw value at `path`. @throws XenstoreError ENOENT, EACCES, EINVAL */
  readBuffer(path: string): Promise<Buffer> {
    return this.call(XsType.READ, 'read', path);
  }

  /** Stores `value` at `path`, creating missing parents. @throws XenstoreError EACCES, EINVAL, E2BIG */
  async write(path: string, value: string | Buffer): Promise<void> {
    this.validatePath(path, 'write');
    const payload = Buffer.concat([Buffer.from(`${path}\0`), Buffer.isBuffer(value) ? value : Buffer.from(value)]);
    this.checkPayload(payload, 'write', path);
    await this.send(XsType.WRITE, payload, this.txId, 'write', path);
  }

  /** Ensures `path` exists (values of existing nodes are kept). @throws XenstoreError EACCES, EINVAL */
  async mkdir(path: string): Promise<void> {
    await this.call(XsType.MKDIR, 'mkdir', path);
  }

  /** Removes `path` and everything below it; a missing node is fine. @throws XenstoreError ENOENT (parent missing), EACCES */
  async rm(path: string): Promise<void> {
    await this.call(XsType.RM, 'rm', path);
  }

  /**
   * The names of `path`'s children. Falls back to DIRECTORY_PART when the list exceeds one
   * payload, and restarts if the node changes between parts.
   * @throws XenstoreError ENOENT, EACCES, EAGAIN (the node kept changing)
   */
  async directory(path: string): Promise<string[]> {
    try {
      return splitNulStrings(await this.call(XsType.DIRECTORY, 'directory', path));
    } catch (err) {
      if (err instanceof XenstoreError && err.code === 'E2BIG' && err.origin === 'xenstored') {
        return this.directoryInParts(path);
      }
      throw err;
    }
  }

  private async directoryInParts(path: string): Promise<string[]> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const names: string[] = [];
      let offset = 0;
      let generation: string | undefined;
      let changed = false;
      for (;;) {
        const reply = await this.send(
          XsType.DIRECTORY_PART,
          nulTerminated(path, String(offset)),
          this.txId,
          'directory',
          path,
        );
        const genEnd = reply.indexOf(0);
        if (genEnd === -1) throw new ProtocolError(`DIRECTORY_PART reply for ${path} has no generation field`);
        const gen = reply.toString('latin1', 0, genEnd);
        if (generation !== undefined && gen !== generation) {
          changed = true;
          break;
        }
        generation = gen;
        const list = reply.subarray(genEnd + 1);
        // The final part ends with an empty name: "...last\0\0", or just "\0".
        const finished =
          list.length === 0 ||
          (list.length >= 1 && list[list.length - 1] === 0 && (list.length === 1 || list[list.length - 2] === 0));
        const body = finished ? list.subarray(0, list.length - 1) : list;
        names.push(...splitNulStrings(body));
        offset += body.length;
        if (finished) break;
        if (body.length === 0) throw new ProtocolError(`DIRECTORY_PART reply for ${path} made no progress`);
      }
      if (!changed) return names;
    }
    throw new XenstoreError(
      'EAGAIN',
      'directory',
      path,
      'the node kept changing while its children were listed',
      'client',
    );
  }

  /** The permission list of `path`: [owner, ...grants]. @throws XenstoreError ENOENT, EACCES */
  async getPerms(path: string): Promise<Permission[]> {
    const reply = await this.call(XsType.GET_PERMS, 'get-perms', path, true);
    return splitNulStrings(reply).map((text) => {
      const perm = parsePermission(text);
      if (!perm) throw new ProtocolError(`GET_PERMS for ${path} returned ${JSON.stringify(text)}, not a permission`);
      return perm;
    });
  }

  /** Replaces the permission list of `path`. @throws XenstoreError ENOENT, EACCES, EPERM, EINVAL */
  async setPerms(path: string, perms: readonly Permission[]): Promise<void> {
    this.validatePath(path, 'set-perms', true);
    if (perms.length === 0) throw new RangeError('expected at least one permission (the owner), got an empty list');
    const payload = nulTerminated(path, ...perms.map(formatPermission));
    this.checkPayload(payload, 'set-perms', path);
    await this.send(XsType.SET_PERMS, payload, this.txId, 'set-perms', path);
  }

  /** Sends a one-path request after checking the path. */
  private call(type: XsTypeNumber, op: string, path: string, allowSpecial = false): Promise<Buffer> {
    this.validatePath(path, op, allowSpecial);
    return this.send(type, nulTerminated(path), this.txId, op, path);
  }

  protected validatePath(path: string, op: string, allowSpecial = false): void {
    checkPath(path, op, { allowRelative: this.relativePaths, allowSpecial });
  }

  protected checkPayload(payload: Buffer, op: string, path: string): void {
    if (payload.length > PAYLOAD_MAX) {
      throw new XenstoreError(
        'E2BIG',
        op,
        path,
        `the request is ${payload.length} bytes; xenstore allows ${PAYLOAD_MAX}`,
        'client',
      );
    }
  }
}

/** Operations inside one xenstore transaction; see XenstoreClient.transaction(). */
export class Transaction extends XenstoreOperations {
  private ended = false;

  /** @internal created by XenstoreClient.transaction() */
  constructor(send: Send, txId: number, relativePaths: boolean) {
    super(
      (type, payload, id, op, path) => {
        if (this.ended) {
          return Promise.reject(new XenstoreError('EINVAL', op, path, 'the transaction has already ended', 'client'));
        }
        return send(type, payload, id, op, path);
      },
      txId,
      relativePaths,
    );
  }

  /** The transaction id xenstored allocated. */
  get id(): number {
    return this.txId;
  }

  /** @internal commits (true) or aborts (false); ends the transaction either way. */
  async end(commit: boolean): Promise<void> {
    await this.send(XsType.TRANSACTION_END, nulTerminated(commit ? 'T' : 'F'), this.txId, 'transaction-end');
    this.ended = true;
  }

  /** @internal marks the transaction unusable without telling xenstored (connection gone). */
  abandon(): void {
    this.ended = true;
  }
}

/**
 * The events of one watch as an async iterator. The first event is the one xenstored sends
 * on registration. At most WATCH_QUEUE_MAX events wait unread; older ones are dropped and
 * counted in `dropped` (a watcher rescans on any event, so a dropped one loses nothing).
 * One reader at a time. close() unregisters the watch; iteration then finishes.
 */
export class Watch implements AsyncIterable<WatchEvent> {
  readonly path: string;
  readonly token: string;
  /** Events discarded because the reader fell more than WATCH_QUEUE_MAX behind. */
  dropped = 0;
  private readonly queue: WatchEvent[] = [];
  private waiter: { resolve: (r: IteratorResult<WatchEvent>) => void; reject: (e: unknown) => void } | undefined;
  private finished = false;
  private failure: Error | undefined;
  private readonly unregister: (watch: Watch) => Promise<void>;

  /** @internal created by XenstoreClient.watch() */
  constructor(path: string, token: string, unregister: (watch: Watch) => Promise<void>) {
    this.path = path;
    this.token = token;
    this.unregister = unregister;
  }

  /** @internal */
  deliver(event: WatchEvent): void {
    if (this.finished) return;
    if (this.waiter) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve({ value: event, done: false });
      return;
    }
    if (this.queue.length >= WATCH_QUEUE_MAX) {
      this.queue.shift();
      this.dropped++;
    }
    this.queue.push(event);
  }

  /** @internal ends iteration; with an error, the next read rejects with it. */
  finish(error?: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = error;
    if (this.waiter) {
      const { resolve, reject } = this.waiter;
      this.waiter = undefined;
      if (error) reject(error);
      else resolve({ value: undefined, done: true });
    }
  }

  /** The next event; rejects if the watch ended because the connection was lost. */
  next(): Promise<IteratorResult<WatchEvent>> {
    if (this.waiter) {
      return Promise.reject(new TypeError('expected one reader per watch, got a second concurrent next()'));
    }
    const event = this.queue.shift();
    if (event) return Promise.resolve({ value: event, done: false });
    if (this.finished) {
      const failure = this.failure;
      this.failure = undefined;
      return failure ? Promise.reject(failure) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Unregisters the watch (UNWATCH) and finishes iteration. */
  close(): Promise<void> {
    return this.unregister(this);
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }
}

interface Pending {
  type: XsTypeNumber;
  op: string;
  path: string | undefined;
  resolve: (payload: Buffer) => void;
  reject: (error: Error) => void;
}

interface Link {
  readonly duplex: Duplex;
  readonly decoder: FrameDecoder;
}

/** A connection to xenstored. Create with XenstoreClient.connect(). */
export class XenstoreClient extends XenstoreOperations {
  readonly transport: Transport;
  private readonly clock: Clock;
  private readonly retryStrategy: ((attempt: number) => number | null) | undefined;
  private readonly maxTransactionAttempts: number;
  private readonly emitter = new EventEmitter();
  private readonly pending = new Map<number, Pending>();
  /** Requests held back until the one in flight is answered (oneRequestAtATime transports). */
  private unsent: Buffer[] = [];
  /** Requests written and not answered yet. */
  private inFlight = 0;
  private readonly watches = new Map<string, Watch>();
  private readonly closing = new AbortController();
  private link: Link | undefined;
  private state: 'open' | 'reconnecting' | 'closed' = 'open';
  private nextReqId = 1;
  private nextToken = 1;

  private constructor(options: XenstoreClientOptions) {
    super(
      (type, payload, txId, op, path) => this.request(type, payload, txId, op, path),
      0,
      options.transport.relativePaths,
    );
    this.transport = options.transport;
    this.clock = options.clock ?? systemClock;
    this.retryStrategy = options.retryStrategy;
    this.maxTransactionAttempts = options.maxTransactionAttempts ?? 8;
    if (!Number.isInteger(this.maxTransactionAttempts) || this.maxTransactionAttempts < 1) {
      throw new RangeError(`expected maxTransactionAttempts >= 1, got ${String(options.maxTransactionAttempts)}`);
    }
  }

  /**
   * Connects through `options.transport`.
   * @throws whatever the transport's connect() throws (it names the endpoint).
   */
  static async connect(options: XenstoreClientOptions): Promise<XenstoreClient> {
    const client = new XenstoreClient(options);
    client.attach(await options.transport.connect(options.signal));
    return client;
  }

  /** Whether requests can be sent now. */
  get connected(): boolean {
    return this.state === 'open' && this.link !== undefined;
  }

  on<E extends keyof XenstoreClientEvents>(event: E, listener: (...args: XenstoreClientEvents[E]) => void): this {
    this.emitter.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  off<E extends keyof XenstoreClientEvents>(event: E, listener: (...args: XenstoreClientEvents[E]) => void): this {
    this.emitter.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** The home path of domain `domid`: /local/domain/<domid>. */
  async getDomainPath(domid: number): Promise<string> {
    if (!Number.isInteger(domid) || domid < 0 || domid > 0xffff) {
      throw new RangeError(`expected a domid in 0..65535, got ${String(domid)} (${typeof domid})`);
    }
    return firstString(await this.request(XsType.GET_DOMAIN_PATH, nulTerminated(String(domid)), 0, 'get-domain-path'));
  }

  /**
   * Registers a watch on `path` (or "@introduceDomain" / "@releaseDomain"). xenstored fires
   * it once at once; then on every change at or below `path`.
   * @throws XenstoreError EEXIST, EACCES, EINVAL; ConnectionClosedError
   */
  async watch(path: string): Promise<Watch> {
    this.validatePath(path, 'watch', true);
    const token = `xc${this.nextToken++}`;
    const watch = new Watch(path, token, (w) => this.unwatch(w));
    // Registered before sending: the guest kernel may deliver the first event before the ack.
    this.watches.set(token, watch);
    try {
      await this.register(watch);
    } catch (err) {
      this.watches.delete(token);
      watch.finish();
      throw err;
    }
    return watch;
  }

  private async register(watch: Watch): Promise<void> {
    const payload = nulTerminated(watch.path, watch.token);
    this.checkPayload(payload, 'watch', watch.path);
    await this.request(XsType.WATCH, payload, 0, 'watch', watch.path);
  }

  private async unwatch(watch: Watch): Promise<void> {
    if (this.watches.get(watch.token) !== watch) return;
    this.watches.delete(watch.token);
    watch.finish();
    if (!this.connected) return;
    try {
      await this.request(XsType.UNWATCH, nulTerminated(watch.path, watch.token), 0, 'unwatch', watch.path);
    } catch (err) {
      // Already gone on the server side (connection lost meanwhile, or never registered): nothing to undo.
      if (!(err instanceof ConnectionClosedError) && !(err instanceof XenstoreError && err.code === 'ENOENT'))
        throw err;
    }
  }

  /**
   * Runs `fn` inside a transaction and commits. When xenstored answers EAGAIN (a conflicting
   * change), the whole transaction is run again, up to maxAttempts times with a short
   * backoff; `fn` must therefore have no side effects outside the transaction. If `fn`
   * throws, the transaction is aborted and the error passed on.
   * @throws XenstoreError EAGAIN after the last attempt; whatever `fn` throws
   */
  async transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: { maxAttempts?: number }): Promise<T> {
    const maxAttempts = options?.maxAttempts ?? this.maxTransactionAttempts;
    let lastConflict: unknown;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (attempt > 1) await this.clock.sleep(Math.min(2 ** (attempt - 2), 50));
      const reply = await this.request(XsType.TRANSACTION_START, nulTerminated(''), 0, 'transaction-start');
      const txId = Number(firstString(reply));
      if (!Number.isInteger(txId) || txId <= 0 || txId > 0xffffffff) {
        throw new ProtocolError(
          `TRANSACTION_START returned ${JSON.stringify(firstString(reply))}, not a transaction id`,
        );
      }
      const tx = new Transaction(this.send, txId, this.relativePaths);
      let result: T;
      try {
        result = await fn(tx);
      } catch (err) {
        await tx.end(false).catch(() => tx.abandon());
        if (isConflict(err)) {
          lastConflict = err;
          continue;
        }
        throw err;
      }
      try {
        await tx.end(true);
        return result;
      } catch (err) {
        tx.abandon();
        if (!isConflict(err)) throw err;
        lastConflict = err;
      }
    }
    throw new XenstoreError(
      'EAGAIN',
      'transaction',
      undefined,
      `still conflicting after ${maxAttempts} attempts; another writer keeps changing the same nodes`,
      'client',
      { cause: lastConflict },
    );
  }

  /** Closes the connection: pending requests reject, watches end, no reconnect. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.finalClose(undefined);
  }

  private request(type: XsTypeNumber, payload: Buffer, txId: number, op: string, path?: string): Promise<Buffer> {
    const link = this.link;
    if (this.state !== 'open' || link === undefined) {
      const why = this.state === 'closed' ? 'closed' : 'down (reconnecting)';
      return Promise.reject(
        new ConnectionClosedError(`xenstore ${op}: the connection to ${this.transport.description} is ${why}`),
      );
    }
    const reqId = this.allocateReqId();
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(reqId, { type, op, path, resolve, reject });
      this.unsent.push(encodeFrame({ type, reqId, txId, payload }));
      this.writeUnsent(link);
    });
  }

  /** Writes the held-back requests the transport can take now. */
  private writeUnsent(link: Link): void {
    const limit = this.transport.oneRequestAtATime ? 1 : Number.POSITIVE_INFINITY;
    while (this.inFlight < limit) {
      const frame = this.unsent.shift();
      if (frame === undefined) return;
      this.inFlight++;
      link.duplex.write(frame);
    }
  }

  private allocateReqId(): number {
    for (;;) {
      const id = this.nextReqId;
      this.nextReqId = id >= 0xffffffff ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  private attach(duplex: Duplex): void {
    const link: Link = { duplex, decoder: new FrameDecoder() };
    this.link = link;
    this.state = 'open';
    duplex.on('data', (chunk: Buffer) => this.onData(link, chunk));
    duplex.on('error', (err) => this.onLinkLost(link, err));
    duplex.on('end', () => this.onLinkLost(link, undefined));
    duplex.on('close', () => this.onLinkLost(link, undefined));
  }

  private onData(link: Link, chunk: Buffer): void {
    if (link !== this.link) return;
    let frames: Frame[];
    try {
      frames = link.decoder.push(chunk);
    } catch (err) {
      this.dropLink(link, err);
      return;
    }
    for (const frame of frames) {
      if (link !== this.link) return;
      this.dispatch(link, frame);
    }
  }

  private dispatch(link: Link, frame: Frame): void {
    if (frame.type === XsType.WATCH_EVENT) {
      const [path, token] = splitNulStrings(frame.payload);
      if (path === undefined || token === undefined) {
        this.dropLink(link, new ProtocolError('a WATCH_EVENT without path and token'));
        return;
      }
      // An unknown token is a late event for a watch closed meanwhile: nothing to deliver.
      this.watches.get(token)?.deliver({ path, token });
      return;
    }
    const pending = this.pending.get(frame.reqId);
    if (!pending) {
      this.dropLink(
        link,
        new ProtocolError(`a ${typeName(frame.type)} reply for req_id ${frame.reqId}, which no request is waiting for`),
      );
      return;
    }
    this.pending.delete(frame.reqId);
    this.inFlight--;
    this.writeUnsent(link);
    if (frame.type === XsType.ERROR) {
      pending.reject(errorFromReply(frame.payload, pending.op, pending.path));
    } else if (frame.type !== pending.type) {
      const error = new ProtocolError(
        `a ${typeName(frame.type)} reply to a ${typeName(pending.type)} request (req_id ${frame.reqId})`,
      );
      pending.reject(error);
      this.dropLink(link, error);
    } else {
      pending.resolve(frame.payload);
    }
  }

  private dropLink(link: Link, cause: unknown): void {
    link.duplex.destroy();
    this.onLinkLost(link, cause);
  }

  private onLinkLost(link: Link, cause: unknown): void {
    if (link !== this.link) return;
    this.link = undefined;
    link.duplex.destroy();
    this.rejectPending(`the connection to ${this.transport.description} was lost`, cause);
    if (this.state === 'closed') return;
    if (this.retryStrategy === undefined) {
      this.finalClose(new ConnectionClosedError(`the connection to ${this.transport.description} was lost`, { cause }));
      return;
    }
    this.state = 'reconnecting';
    void this.reconnect(cause);
  }

  private async reconnect(cause: unknown): Promise<void> {
    for (let attempt = 1; this.state === 'reconnecting'; attempt++) {
      const delayMs = this.retryStrategy?.(attempt) ?? null;
      if (delayMs === null) {
        this.finalClose(
          new ConnectionClosedError(
            `gave up reconnecting to ${this.transport.description} after ${attempt - 1} attempts`,
            { cause },
          ),
        );
        return;
      }
      this.emitter.emit('reconnecting', { attempt, delayMs, cause });
      try {
        await this.clock.sleep(delayMs, this.closing.signal);
        const duplex = await this.transport.connect(this.closing.signal);
        if (this.state !== 'reconnecting') {
          duplex.destroy();
          return;
        }
        this.attach(duplex);
        for (const watch of [...this.watches.values()]) {
          await this.register(watch).catch((err: unknown) => {
            this.watches.delete(watch.token);
            watch.finish(err instanceof Error ? err : new Error(String(err)));
          });
        }
        this.emitter.emit('reconnected');
        return;
      } catch (err) {
        if (this.state !== 'reconnecting') return;
        cause = err;
      }
    }
  }

  private rejectPending(message: string, cause: unknown): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.unsent = [];
    this.inFlight = 0;
    for (const p of pending) {
      const where = p.path === undefined ? '' : ` ${p.path}`;
      p.reject(new ConnectionClosedError(`xenstore ${p.op}${where}: ${message}`, { cause }));
    }
  }

  private finalClose(error: Error | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closing.abort(new ConnectionClosedError('the xenstore client was closed'));
    const link = this.link;
    this.link = undefined;
    link?.duplex.destroy();
    this.rejectPending(error ? error.message : 'the client was closed', error);
    const watches = [...this.watches.values()];
    this.watches.clear();
    for (const watch of watches) watch.finish(error);
    this.emitter.emit('close', error);
  }
}

function isConflict(err: unknown): boolean {
  return err instanceof XenstoreError && err.code === 'EAGAIN' && err.origin === 'xenstored';
}
