/*
 * Transport over the guest's xenbus character device (/dev/xen/xenbus, or /proc/xen/xenbus
 * with xenfs). Layer: I/O. Relative paths work here: the kernel resolves them against the
 * domain's home, and it tracks watches and transactions per open file.
 *
 * Why a worker thread: a read on the device blocks until xenstored has something to say,
 * and a watch keeps one read pending for ever. fs.read() would hold one of libuv's four
 * shared threadpool threads for that whole time (measured in a real guest: with four
 * pending reads an unrelated fs.stat waited 3.1 s); net.Socket refuses the device
 * (ERR_INVALID_FD_TYPE); the pipe_wrap binding that would poll it is internal. So each
 * connection owns one worker thread that does nothing but blocking readSync() calls and
 * posts the bytes back; the main thread never blocks and the threadpool stays free.
 * Writes go through fs.write, one whole message per call (the device acts on one message
 * per write), queued in order by the Writable side; the client sends the next request only
 * after the previous reply (oneRequestAtATime: the device's buffer reuse, see Transport).
 * Closing: a thread blocked in read() cannot be interrupted, so destroy() sets a shared stop
 * flag and writes one harmless request (GET_DOMAIN_PATH) whose reply wakes the reader; the
 * worker then exits and the fd is closed. The worker is unref'd from then on, so a
 * xenstored that never answers cannot keep the process alive.
 */
import { close, open, write } from 'node:fs';
import { Duplex } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { unavailableHint, XenstoreUnavailableError } from '../errors.js';
import type { Transport } from '../transport.js';
import { encodeFrame, nulTerminated, XsType } from '../wire.js';

// The reader runs as a classic script in the worker (eval), so it ships inside this module
// whatever bundler packages the project. It posts {data} chunks, then {end} or {error}.
const readerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const { readSync } = require('node:fs');
const stop = new Int32Array(workerData.stop);
for (;;) {
  const buf = Buffer.allocUnsafe(8192);
  let n;
  try {
    n = readSync(workerData.fd, buf, 0, buf.length, null);
  } catch (err) {
    if (Atomics.load(stop, 0) === 1) break;
    if (err.code === 'EINTR' || err.code === 'EAGAIN') continue;
    parentPort.postMessage({ error: { code: err.code, message: err.message } });
    break;
  }
  if (Atomics.load(stop, 0) === 1) break;
  if (n === 0) { parentPort.postMessage({ end: true }); break; }
  const chunk = new Uint8Array(buf.buffer, buf.byteOffset, n).slice();
  parentPort.postMessage({ data: chunk }, [chunk.buffer]);
}
`;

type ReaderMessage = { data: Uint8Array } | { end: true } | { error: { code?: string; message: string } };

const WAKE_REQ_ID = 0xffffffff;

/** One open xenbus device file as a Duplex. */
class XenbusDeviceStream extends Duplex {
  private readonly fd: number;
  private readonly devicePath: string;
  private readonly stop = new Int32Array(new SharedArrayBuffer(4));
  private readonly reader: Worker;
  private readerExited = false;

  constructor(fd: number, devicePath: string) {
    super();
    this.fd = fd;
    this.devicePath = devicePath;
    this.reader = new Worker(readerSource, { eval: true, workerData: { fd, stop: this.stop.buffer } });
    this.reader.on('message', (msg: ReaderMessage) => {
      if ('data' in msg) this.push(Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength));
      else if ('end' in msg) this.push(null);
      else
        this.destroy(
          Object.assign(new Error(`reading ${this.devicePath}: ${msg.error.message}`), { code: msg.error.code }),
        );
    });
    this.reader.on('error', (err) => this.destroy(err));
    this.reader.on('exit', () => {
      this.readerExited = true;
      if (this.destroyed) close(this.fd, () => {});
    });
  }

  override _read(): void {
    // The worker pushes as bytes arrive; xenstore messages are small and bounded per request.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    write(this.fd, chunk, 0, chunk.length, null, (err) => callback(err));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    Atomics.store(this.stop, 0, 1);
    if (this.readerExited) {
      close(this.fd, () => callback(error));
      return;
    }
    this.reader.unref();
    const wake = encodeFrame({
      type: XsType.GET_DOMAIN_PATH,
      reqId: WAKE_REQ_ID,
      txId: 0,
      payload: nulTerminated('0'),
    });
    write(this.fd, wake, 0, wake.length, null, () => callback(error));
  }
}

export class XenbusDeviceTransport implements Transport {
  readonly relativePaths = true;
  /** The device reuses one buffer per open file for request payloads (see Transport). */
  readonly oneRequestAtATime = true;
  readonly description: string;
  readonly devicePath: string;

  constructor(devicePath: string) {
    this.devicePath = devicePath;
    this.description = `xenbus device ${devicePath}`;
  }

  connect(signal?: AbortSignal): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      open(this.devicePath, 'r+', (err, fd) => {
        if (err) {
          reject(
            new XenstoreUnavailableError(
              this.devicePath,
              `cannot open ${this.devicePath}: ${unavailableHint(err.code)}`,
              {
                cause: err,
              },
            ),
          );
          return;
        }
        if (signal?.aborted) {
          close(fd, () => reject(signal.reason));
          return;
        }
        resolve(new XenbusDeviceStream(fd, this.devicePath));
      });
    });
  }
}
