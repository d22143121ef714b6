/*
 * Public face of the simulated xenstored: the XenstoredSim I/O class, plus the pure core for
 * tests that drive requests frame by frame. Layer: exports only.
 * Spec: docs/misc/xenstore.txt and the behaviour of C xenstored (Xen 4.17).
 */
export { isPrivileged, mayReadAny, PERM_OWNER, PERM_READ, PERM_WRITE, permFor } from './access.js';
export { errorFrame, handleFrame, QUOTAS, specialEvents } from './core.js';
export {
  type SimConnectOptions,
  type SimRequest,
  type SimRequestHook,
  type SimTransportOptions,
  XenstoredSim,
} from './server.js';
export {
  type ConnState,
  closeConnection,
  createState,
  type Delivery,
  openConnection,
  type SimState,
  type Watch,
} from './state.js';
export { canCommit, commitTransaction, type Transaction, type TreeView } from './transaction.js';
export { createStore, NO_GENERATION, type Store, type XsNode } from './tree.js';
export { eventPath, type FireEvent, watchEventFrame, watchEvents, watchMatches } from './watches.js';
