// Harness-private xenstore client for dom0: the wire protocol on the xenstored Unix socket.
// I/O layer (one socket); it exists only so the harness can write libxl's nodes in ONE
// transaction and wait on states, until the project's own client replaces it.
// Invariants: req_id is unique among requests in flight; watch events (type 15) never
// resolve a request (the harness sets no watches); close() rejects everything pending.
// Spec: xen/include/public/io/xs_wire.h, docs/misc/xenstore.txt.
import net from 'node:net';

const XS = {
  DIRECTORY: 1,
  READ: 2,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  WRITE: 11,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15,
  ERROR: 16,
};

export class XenstoreError extends Error {
  constructor(code, op, path) {
    super(`xenstore ${op} ${path}: ${code}`);
    this.code = code;
  }
}

export class Xenstore {
  /** Connect to xenstored's Unix socket. */
  static connect(path = '/run/xenstored/socket') {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(path);
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(new Xenstore(sock));
      });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.pending = new Map();
    this.nextId = 1;
    sock.on('data', (chunk) => this.#onData(chunk));
    sock.on('error', () => {});
    sock.on('close', () => this.#rejectAll(new Error('xenstore connection closed')));
  }

  #onData(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 16) {
      const type = this.buf.readUInt32LE(0),
        id = this.buf.readUInt32LE(4),
        len = this.buf.readUInt32LE(12);
      if (this.buf.length < 16 + len) return;
      const body = this.buf.subarray(16, 16 + len);
      this.buf = this.buf.subarray(16 + len);
      if (type === XS.WATCH_EVENT) continue;
      const p = this.pending.get(id);
      if (!p) continue;
      this.pending.delete(id);
      if (type === XS.ERROR) p.reject(new XenstoreError(body.toString().replace(/\0.*$/s, ''), p.op, p.path));
      else p.resolve(body);
    }
  }

  #rejectAll(err) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  #request(type, parts, tx = 0, op = '', path = '') {
    const body = Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
    const id = this.nextId++;
    const hdr = Buffer.alloc(16);
    hdr.writeUInt32LE(type, 0);
    hdr.writeUInt32LE(id, 4);
    hdr.writeUInt32LE(tx, 8);
    hdr.writeUInt32LE(body.length, 12);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, op, path });
      this.sock.write(Buffer.concat([hdr, body]));
    });
  }

  /** Value of path as a string, or `fallback` if it does not exist. */
  async read(path, fallback = null, tx = 0) {
    try {
      return (await this.#request(XS.READ, [path, '\0'], tx, 'read', path)).toString();
    } catch (e) {
      if (e.code === 'ENOENT') return fallback;
      throw e;
    }
  }

  async directory(path, tx = 0) {
    try {
      const s = (await this.#request(XS.DIRECTORY, [path, '\0'], tx, 'directory', path)).toString();
      return s.split('\0').filter(Boolean);
    } catch (e) {
      if (e.code === 'ENOENT') return [];
      throw e;
    }
  }

  write(path, value, tx = 0) {
    return this.#request(XS.WRITE, [path, '\0', String(value)], tx, 'write', path);
  }
  rm(path, tx = 0) {
    return this.#request(XS.RM, [path, '\0'], tx, 'rm', path);
  }
  /** perms: e.g. ['n5', 'r0'] (owner 5 with no access for others, dom0 may read). */
  setPerms(path, perms, tx = 0) {
    return this.#request(XS.SET_PERMS, [path, '\0', ...perms.map((p) => `${p}\0`)], tx, 'set_perms', path);
  }

  /**
   * Run fn(tx) inside one transaction and commit; the whole fn is rerun on EAGAIN
   * (at most 20 attempts). fn must only issue xenstore operations with the tx id.
   */
  async transaction(fn) {
    for (let attempt = 1; attempt <= 20; attempt++) {
      const tx = Number(
        (await this.#request(XS.TRANSACTION_START, ['\0'], 0, 'transaction_start', ''))
          .toString()
          .replace(/\0.*$/s, ''),
      );
      try {
        await fn(tx);
      } catch (e) {
        await this.#request(XS.TRANSACTION_END, ['F\0'], tx, 'transaction_end', '').catch(() => {});
        throw e;
      }
      try {
        await this.#request(XS.TRANSACTION_END, ['T\0'], tx, 'transaction_end', '');
        return;
      } catch (e) {
        if (e.code !== 'EAGAIN') throw e;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
    throw new Error('xenstore transaction: still EAGAIN after 20 attempts');
  }

  close() {
    this.sock.destroy();
  }
}
