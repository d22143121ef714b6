/*
 * Public surface of the xenstore client (exported as "xen-channels/xenstore"): the client,
 * its transports, the codec, permissions, path rules and errors. Exports only.
 */

export type { WatchEvent, XenstoreClientEvents, XenstoreClientOptions } from './client.js';
export { Transaction, Watch, XenstoreClient, XenstoreOperations } from './client.js';
export type { EndpointLookup } from './default-transport.js';
export { chooseTransport, DEVICE_PATHS, SOCKET_PATHS } from './default-transport.js';
export type { XenstoreErrno } from './errors.js';
export {
  ConnectionClosedError,
  errorFromReply,
  ProtocolError,
  XenstoreError,
  XenstoreUnavailableError,
} from './errors.js';
export type { PathKind, PathRules } from './paths.js';
export { checkPath, isPathWithin, joinPath } from './paths.js';
export type { Access, Permission } from './perms.js';
export { accessFor, canRead, canWrite, formatPermission, parsePermission } from './perms.js';
export type { Transport } from './transport.js';
export { UnixSocketTransport } from './transports/unix-socket.js';
export { XenbusDeviceTransport } from './transports/xenbus-device.js';
export type { Frame, XsTypeName } from './wire.js';
export {
  ABS_PATH_MAX,
  encodeFrame,
  FrameDecoder,
  HEADER_SIZE,
  PAYLOAD_MAX,
  REL_PATH_MAX,
  typeName,
  XsType,
} from './wire.js';
