/*
 * The transport seam: how the client gets a byte stream to xenstored. A transport only moves
 * bytes; framing, matching replies and watches belong to the client. Implementations: the
 * guest's xenbus character device (transports/xenbus-device.ts), dom0's Unix socket
 * (transports/unix-socket.ts) and the simulator's in-memory connections (sim/xenstored).
 * Contract:
 *  - connect() resolves with a fresh Duplex for one xenstore connection, or rejects with an
 *    error that names the endpoint; an aborted signal rejects with the signal's reason.
 *  - Each write() on the Duplex carries exactly one whole message (the xenbus device acts on
 *    one message per write and drops anything after it); reads may split or merge messages.
 *  - The Duplex ends ('end' or 'close') when the connection is lost; destroy() releases it.
 *  - `relativePaths` is true only where xenstored resolves paths against the caller's home
 *    (/local/domain/<domid>), i.e. on a domain's own connection.
 *  - `oneRequestAtATime` is true where the endpoint cannot take a request before the previous
 *    one is answered: the client then holds each request back until the reply to the one
 *    before has arrived.
 */
import type { Duplex } from 'node:stream';

export interface Transport {
  /** What this connects to, for messages: "/dev/xen/xenbus", "unix socket /run/xenstored/socket". */
  readonly description: string;
  /** Relative paths are resolved by the other end (guest device connections). */
  readonly relativePaths: boolean;
  /**
   * The Linux xenbus device keeps a request's payload in its per-file buffer, which the next
   * write() overwrites, until its xenbus thread copies it to the ring: a second request written
   * before that goes out with its payload in the first one's place (seen on real Xen: a READ
   * of device/console/3/state reached xenstored as "device/console/3/backen"). libxenstore
   * never sends a request before the previous reply; neither may a client of the device.
   */
  readonly oneRequestAtATime?: boolean;
  connect(signal?: AbortSignal): Promise<Duplex>;
}
