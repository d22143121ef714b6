/*
 * A scripted xenstored for client tests: a Unix socket server in a test directory whose
 * test code receives each decoded request and decides, frame by frame, what to answer
 * (out of order, interleaved with watch events, garbage, or a dropped connection).
 * Test helper; closes everything through t.teardown.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { Clock } from '../../agent/clock.js';
import { UnixSocketTransport } from '../../agent/xenstore/transports/unix-socket.js';
import { encodeFrame, type Frame, FrameDecoder, nulTerminated, XsType } from '../../agent/xenstore/wire.js';
import { shortDir } from './short-dir.js';

export interface ReceivedRequest extends Frame {
  /** The connection it came on (0 = first accepted). */
  readonly connection: number;
  /** Sends a reply of the request's own type with `payload`. */
  reply(payload: Buffer | string): void;
  /** Sends an XS_ERROR reply with the errno name. */
  fail(errno: string): void;
}

export interface ScriptedPeer {
  readonly transport: UnixSocketTransport;
  /** The next request, in arrival order. */
  next(): Promise<ReceivedRequest>;
  /** Writes raw bytes to connection `n` (default: the latest). */
  sendRaw(bytes: Buffer, n?: number): void;
  /** Sends a watch event on connection `n` (default: the latest). */
  event(path: string, token: string, n?: number): void;
  /** Destroys connection `n` (default: the latest). */
  drop(n?: number): void;
  /** Number of connections accepted so far. */
  readonly accepted: number;
}

export async function scriptedPeer(t: Test): Promise<ScriptedPeer> {
  const path = join(shortDir(t), 'xenstored.sock');
  const sockets: Socket[] = [];
  const inbox: ReceivedRequest[] = [];
  const waiters: Array<(r: ReceivedRequest) => void> = [];
  const server: Server = createServer((socket) => {
    const connection = sockets.length;
    sockets.push(socket);
    const decoder = new FrameDecoder();
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      for (const frame of decoder.push(chunk)) {
        const send = (type: number, payload: Buffer | string): void => {
          socket.write(encodeFrame({ type, reqId: frame.reqId, txId: frame.txId, payload: Buffer.from(payload) }));
        };
        const request: ReceivedRequest = {
          ...frame,
          connection,
          reply: (payload) => send(frame.type, payload),
          fail: (errno) => send(XsType.ERROR, `${errno}\0`),
        };
        const waiter = waiters.shift();
        if (waiter) waiter(request);
        else inbox.push(request);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const socketAt = (n?: number): Socket => {
    const socket = sockets[n ?? sockets.length - 1];
    if (!socket) throw new Error(`no connection ${n}`);
    return socket;
  };
  return {
    transport: new UnixSocketTransport(path),
    next: () => {
      const queued = inbox.shift();
      return queued ? Promise.resolve(queued) : new Promise((resolve) => waiters.push(resolve));
    },
    sendRaw: (bytes, n) => socketAt(n).write(bytes),
    event: (p, token, n) =>
      socketAt(n).write(encodeFrame({ type: XsType.WATCH_EVENT, reqId: 0, txId: 0, payload: nulTerminated(p, token) })),
    drop: (n) => socketAt(n).destroy(),
    get accepted() {
      return sockets.length;
    },
  };
}

/** A clock whose sleeps resolve at once and are recorded. */
export function instantClock(): Clock & { slept: number[] } {
  const slept: number[] = [];
  return {
    slept,
    now: () => 0,
    epochMs: () => 0,
    sleep: (ms, signal) => {
      slept.push(ms);
      return signal?.aborted ? Promise.reject(signal.reason) : Promise.resolve();
    },
  };
}
