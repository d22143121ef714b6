/*
 * The real dom0 as a HostEnv: xenstored's Unix socket, libxl's QMP socket of each domain's
 * device model (/var/run/xen/qmp-libxl-<domid>), the system clock and the xen-channels
 * inter-process lock. The only host module that names system paths. Layer: effect wiring,
 * called by the CLI (the composition root). close() ends the xenstore connection.
 */
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { systemClock } from '../clock.js';
import { withLock } from '../effects/files.js';
import { XenstoreClient } from '../xenstore/client.js';
import { chooseTransport } from '../xenstore/default-transport.js';
import { XenstoreUnavailableError } from '../xenstore/errors.js';
import { UnixSocketTransport } from '../xenstore/transports/unix-socket.js';
import type { HostEnv } from './channels.js';
import { HostError } from './errors.js';
import { QmpClient } from './qmp.js';

/** libxl's QMP socket for the device model of `domid` (libxl_qmp.c, libxl_dm.c). */
export const qmpSocketPath = (domid: number): string => `/var/run/xen/qmp-libxl-${domid}`;

function connectUnix(path: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

async function openQmp(domid: number): Promise<QmpClient> {
  const path = qmpSocketPath(domid);
  let stream: Duplex;
  try {
    stream = await connectUnix(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') {
      throw new HostError(
        'ENODM',
        `domain ${domid} has no QEMU serving channels (${path}: ${code}). libxl starts one for a PV or PVH guest ` +
          'only when its configuration has a channel (or a vfb or qdisk), and xen-channels does not start one for a running domain. ' +
          'Give the domain a channel in its xl.cfg, e.g. channel = [ "connection=pty, name=org.example.unused.0" ], and create it again; ' +
          'then channels can be attached and detached while it runs.',
        { cause: error },
      );
    }
    throw new HostError('EQMP', `cannot connect to ${path} (domain ${domid}): ${(error as Error).message}`, {
      cause: error,
    });
  }
  return QmpClient.open(stream, { clock: systemClock, where: `QMP ${path}` });
}

/**
 * Connects to xenstored through its Unix socket (the host commands run in dom0 as root).
 * @throws XenstoreUnavailableError when there is no xenstored socket here
 */
export async function nodeHostEnv(note: (line: string) => void): Promise<HostEnv & { close(): Promise<void> }> {
  const transport = chooseTransport({ env: process.env, exists: existsSync });
  if (!(transport instanceof UnixSocketTransport)) {
    throw new XenstoreUnavailableError(
      transport.description,
      "xen-channel host runs in dom0 as root: no xenstored socket here (this looks like a guest; use it on the domain's host)",
    );
  }
  const xs = await XenstoreClient.connect({ transport });
  return {
    xs,
    clock: systemClock,
    qmp: openQmp,
    socketInUse: (path) =>
      connectUnix(path).then(
        (socket) => {
          socket.destroy();
          return true;
        },
        () => false,
      ),
    withDomainLock: (domid, fn) => withLock(`host-domain-${domid}`, systemClock, fn),
    note,
    close: () => xs.close(),
  };
}
