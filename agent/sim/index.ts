/*
 * xen-channels/sim: a simulated guest world for tests without Xen. Today: the in-memory
 * xenstored (XenstoredSim) and the socket-like Duplex pair it is wired with.
 * Layer: exports only.
 */
export { createDuplexPair } from './duplex-pair.js';
export { type SimConnectOptions, type SimTransportOptions, XenstoredSim } from './xenstored/index.js';
