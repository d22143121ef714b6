/*
 * Two connected in-memory Duplex ends, standing in for a socket pair: bytes written to one end
 * are read from the other. Layer: I/O (in-memory only; no sockets, no timers).
 * Invariants: delivery is asynchronous (process.nextTick) and in write order; a write's callback
 * waits while the peer's read buffer is full (backpressure); bytes written after the peer is
 * gone are dropped, as a half-closed socket would lose them.
 * Closing: end() is seen by the peer as 'end'; destroy() as 'end' then 'close'. Both ends use
 * allowHalfOpen: false, like net.Socket, so an end that reads EOF ends its own side too.
 */
import { Duplex } from 'node:stream';

class PairEnd extends Duplex {
  peer: PairEnd | undefined;
  /** The peer's write callback, held until this end's reader wants more (push returned false). */
  private heldWrite: (() => void) | undefined;
  /** EOF was pushed into this end's readable side. */
  private eofPushed = false;

  constructor() {
    super({ allowHalfOpen: false });
  }

  /** Called by the peer (on a later tick) to hand over bytes written on its side. */
  deliver(chunk: Buffer, done: () => void): void {
    if (this.destroyed || this.eofPushed) {
      done();
      return;
    }
    if (this.push(chunk)) done();
    else this.heldWrite = done;
  }

  /** Called by the peer when its writable side finished or it was destroyed. */
  deliverEof(): void {
    if (this.destroyed || this.eofPushed) return;
    this.eofPushed = true;
    this.push(null);
  }

  override _read(): void {
    const held = this.heldWrite;
    if (held) {
      this.heldWrite = undefined;
      held();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    process.nextTick(() => {
      if (peer === undefined) callback();
      else peer.deliver(chunk, () => callback());
    });
  }

  override _final(callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    process.nextTick(() => {
      peer?.deliverEof();
      callback();
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    const held = this.heldWrite;
    this.heldWrite = undefined;
    process.nextTick(() => {
      // The peer's pending write can never be read now: release it so the peer does not hang.
      held?.();
      peer?.deliverEof();
    });
    callback(error);
  }
}

/**
 * Creates two connected in-memory Duplex ends that behave like the two sides of a socket.
 * Node 22 has stream.duplexPair; this works on Node 18.
 */
export function createDuplexPair(): [Duplex, Duplex] {
  const a = new PairEnd();
  const b = new PairEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
