/*
 * Chooses the xenstore endpoint the way libxenstore's xs_open() does: the daemon's Unix
 * socket when there is one (XENSTORED_PATH, /run/xenstored/socket, /var/run/xenstored/socket;
 * dom0), else the xenbus device (/dev/xen/xenbus, /proc/xen/xenbus; guests). The standard
 * paths live here; the environment and the existence check are injected. Layer: pure
 * decision over injected lookups.
 */
import { XenstoreUnavailableError } from './errors.js';
import type { Transport } from './transport.js';
import { UnixSocketTransport } from './transports/unix-socket.js';
import { XenbusDeviceTransport } from './transports/xenbus-device.js';

export const SOCKET_PATHS = ['/run/xenstored/socket', '/var/run/xenstored/socket'] as const;
export const DEVICE_PATHS = ['/dev/xen/xenbus', '/proc/xen/xenbus'] as const;

export interface EndpointLookup {
  env: Readonly<Record<string, string | undefined>>;
  /** True when something exists at the path (socket or character device). */
  exists: (path: string) => boolean;
}

/**
 * The transport for this machine.
 * @throws XenstoreUnavailableError listing every place looked at when none exists.
 */
export function chooseTransport({ env, exists }: EndpointLookup): Transport {
  const override = env.XENSTORED_PATH;
  if (override) return new UnixSocketTransport(override);
  const socket = SOCKET_PATHS.find(exists);
  if (socket) return new UnixSocketTransport(socket);
  const device = DEVICE_PATHS.find(exists);
  if (device) return new XenbusDeviceTransport(device);
  throw new XenstoreUnavailableError(
    DEVICE_PATHS[0],
    `no xenstore endpoint: none of ${[...SOCKET_PATHS, ...DEVICE_PATHS].join(', ')} exists. ` +
      'In a guest, check that this is a Xen guest and that the xen kernel modules are loaded; in dom0, start xenstored.',
  );
}
