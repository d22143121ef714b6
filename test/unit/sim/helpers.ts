/*
 * Test helpers for the simulated xenstored: hand-built request frames, a harness that runs the
 * pure core connection by connection, and a frame reader for streams. Not a test itself (tap
 * lists it as "no tests found").
 * Layer: test support; the reader only listens to streams it is given and never closes them.
 */
import type { Duplex } from 'node:stream';
import {
  type ConnState,
  createState,
  type Delivery,
  handleFrame,
  openConnection,
  type SimState,
} from '../../../agent/sim/xenstored/index.js';
import { type Frame, FrameDecoder, nulTerminated, XsType } from '../../../agent/xenstore/wire.js';

export { nulTerminated, XsType };

/** A request frame; string payloads are taken as UTF-8 bytes as they are (add NULs yourself). */
export function request(type: number, payload: Buffer | string, txId = 0, reqId = 7): Frame {
  return { type, reqId, txId, payload: typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload };
}

/** "ERR:ENOENT" for an XS_ERROR frame, else the payload as text (NULs shown as "\0"). */
export function outcome(frame: Frame | undefined): string {
  if (!frame) return '<none>';
  const text = frame.payload.toString('utf8');
  return frame.type === XsType.ERROR ? `ERR:${text.replace(/\0$/, '')}` : text;
}

/** The result of one request run through the pure core. */
export interface Run {
  /** The reply frame to the requesting connection. */
  readonly reply: Frame;
  /** Everything sent, in order. */
  readonly all: readonly Delivery[];
  /** Watch events, as "conn#<id> <path> <token>". */
  readonly events: string[];
}

/** Drives handleFrame() directly: one SimState, connections made on demand. */
export class Harness {
  readonly state: SimState = createState();
  readonly dom0: ConnState;

  constructor() {
    this.dom0 = this.conn(0);
  }

  conn(domid: number): ConnState {
    return openConnection(this.state, domid);
  }

  run(conn: ConnState, type: number, payload: Buffer | string, txId = 0): Run {
    const frame = request(type, payload, txId);
    const all = handleFrame(this.state, conn, frame);
    const replies = all.filter((d) => d.conn === conn && d.frame.type !== XsType.WATCH_EVENT);
    if (replies.length !== 1) throw new Error(`expected exactly one reply, got ${replies.length}`);
    const reply = (replies[0] as Delivery).frame;
    const events = all
      .filter((d) => d.frame.type === XsType.WATCH_EVENT)
      .map((d) => `conn#${d.conn.id} ${d.frame.payload.toString('utf8').split('\0').slice(0, 2).join(' ')}`);
    return { reply, all, events };
  }

  /** Runs a request and returns outcome(reply). */
  try(conn: ConnState, type: number, payload: Buffer | string, txId = 0): string {
    return outcome(this.run(conn, type, payload, txId).reply);
  }

  /** Runs a request that must succeed; returns the reply payload. */
  ok(conn: ConnState, type: number, payload: Buffer | string, txId = 0): Buffer {
    const { reply } = this.run(conn, type, payload, txId);
    if (reply.type === XsType.ERROR) throw new Error(`request ${type} failed: ${outcome(reply)}`);
    return reply.payload;
  }

  write(conn: ConnState, path: string, value: string, txId = 0): string {
    return this.try(conn, XsType.WRITE, `${path}\0${value}`, txId);
  }

  setPerms(conn: ConnState, path: string, ...perms: string[]): string {
    return this.try(conn, XsType.SET_PERMS, nulTerminated(path, ...perms));
  }

  read(conn: ConnState, path: string, txId = 0): string {
    return this.try(conn, XsType.READ, nulTerminated(path), txId);
  }

  perms(path: string): string {
    return this.try(this.dom0, XsType.GET_PERMS, nulTerminated(path));
  }

  watch(conn: ConnState, path: string, token: string): string {
    return this.try(conn, XsType.WATCH, nulTerminated(path, token));
  }

  startTransaction(conn: ConnState): number {
    return Number(this.ok(conn, XsType.TRANSACTION_START, '\0').toString('utf8').replace(/\0$/, ''));
  }
}

/** Collects the frames arriving on a stream, in order. */
export class FrameReader {
  readonly #decoder = new FrameDecoder();
  readonly #frames: Frame[] = [];
  readonly #waiters: { resolve: (frame: Frame) => void; reject: (error: Error) => void }[] = [];
  #closed = false;
  /** Resolves when the stream has closed. */
  readonly closed: Promise<void>;

  constructor(stream: Duplex) {
    stream.on('data', (chunk: Buffer) => {
      for (const frame of this.#decoder.push(chunk)) {
        const waiter = this.#waiters.shift();
        if (waiter) waiter.resolve(frame);
        else this.#frames.push(frame);
      }
    });
    this.closed = new Promise((resolve) => {
      stream.on('close', () => {
        this.#closed = true;
        for (const waiter of this.#waiters.splice(0)) waiter.reject(new Error('stream closed'));
        resolve();
      });
    });
    stream.on('error', () => {});
  }

  /** The next frame; rejects if the stream closes first. */
  next(): Promise<Frame> {
    const frame = this.#frames.shift();
    if (frame) return Promise.resolve(frame);
    if (this.#closed) return Promise.reject(new Error('stream closed'));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** The next `n` frames. */
  async take(n: number): Promise<Frame[]> {
    const out: Frame[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next());
    return out;
  }

  /** Frames received but not yet taken. */
  get pending(): number {
    return this.#frames.length;
  }
}
