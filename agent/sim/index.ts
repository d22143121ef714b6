/*
 * xen-channels/sim: a simulated Xen guest for tests and demos without Xen: the in-memory
 * xenstored (XenstoredSim), the socket-like Duplex pair it is wired with, and SimulatedGuest
 * (a guest kernel following hvc_xen, a pty per channel bridged to a dom0-side socket, a
 * toolstack that plugs and unplugs like libxl) with simEnv() to run the agent in it.
 * Layer: exports only.
 */
export { createDuplexPair } from './duplex-pair.js';
export type { SimulatedGuestOptions, Uevent } from './guest.js';
export { probeSimulatedTty, SimulatedGuest, simEnv } from './guest.js';
export { type SimConnectOptions, type SimTransportOptions, XenstoredSim } from './xenstored/index.js';
