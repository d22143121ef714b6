/*
 * Transport over a xenstored Unix socket (dom0: /run/xenstored/socket). Layer: I/O.
 * Daemon sockets take absolute paths only; a socket that stands for a domain's own
 * connection (the simulated guest's xenbus) says so with `relativePaths`, and one standing for
 * the xenbus device with `oneRequestAtATime`. connect() rejects
 * with XenstoreUnavailableError naming the socket and what to check; an aborted signal
 * destroys the half-open socket.
 */
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { unavailableHint, XenstoreUnavailableError } from '../errors.js';
import type { Transport } from '../transport.js';

export class UnixSocketTransport implements Transport {
  readonly relativePaths: boolean;
  readonly oneRequestAtATime: boolean;
  readonly description: string;
  readonly socketPath: string;

  constructor(socketPath: string, options: { relativePaths?: boolean; oneRequestAtATime?: boolean } = {}) {
    this.socketPath = socketPath;
    this.relativePaths = options.relativePaths ?? false;
    this.oneRequestAtATime = options.oneRequestAtATime ?? false;
    this.description = `xenstored socket ${socketPath}`;
  }

  connect(signal?: AbortSignal): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const socket = createConnection({ path: this.socketPath });
      const onAbort = (): void => {
        socket.destroy();
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('connect', () => {
        signal?.removeEventListener('abort', onAbort);
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        signal?.removeEventListener('abort', onAbort);
        reject(
          new XenstoreUnavailableError(
            this.socketPath,
            `cannot connect to xenstored at ${this.socketPath}: ${unavailableHint(err.code)}`,
            { cause: err },
          ),
        );
      });
    });
  }
}
