// dom0 end of one channel: a client connection to the Unix socket QEMU serves for it.
// I/O layer. Received bytes accumulate until an expectation consumes them (up to the
// end of the match), so a reply that arrives before `expect` is not lost.
// close() ends the connection; a pending expect then fails.
import net from 'node:net';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class ChannelConnection {
  /** Connect, retrying while the socket does not exist yet (QEMU creates it). */
  static async open(path, timeoutS) {
    const deadline = Date.now() + timeoutS * 1000;
    for (;;) {
      try {
        return new ChannelConnection(
          await new Promise((resolve, reject) => {
            const s = net.createConnection(path);
            s.once('error', reject);
            s.once('connect', () => {
              s.off('error', reject);
              resolve(s);
            });
          }),
          path,
        );
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`cannot connect to ${path}: ${e.message}`);
        await sleep(200);
      }
    }
  }

  constructor(sock, path) {
    this.sock = sock;
    this.path = path;
    this.buf = Buffer.alloc(0);
    this.closed = false;
    this.notify = () => {};
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.notify();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      this.closed = true;
      this.notify();
    });
  }

  send(data) {
    return new Promise((resolve, reject) => this.sock.write(data, (e) => (e ? reject(e) : resolve())));
  }

  /**
   * Wait until the received bytes (latin1 text) match `test` (a function returning
   * the end offset of the match, or -1); consume up to there and return the text.
   */
  async expect(test, timeoutS) {
    const deadline = Date.now() + timeoutS * 1000;
    for (;;) {
      const text = this.buf.toString('latin1');
      const end = test(text);
      if (end >= 0) {
        this.buf = this.buf.subarray(end);
        return text.slice(0, end);
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) {
        const why = this.closed ? 'connection closed' : `timeout after ${timeoutS} s`;
        throw new Error(`${this.path}: ${why}; received ${JSON.stringify(text.slice(-300))}`);
      }
      await new Promise((r) => {
        this.notify = r;
        setTimeout(r, Math.min(left, 500));
      });
    }
  }

  close() {
    this.sock.destroy();
  }
}
