/*
 * Public exports of xen-channels for guest applications: find channels by name, wait for
 * them, open them as binary-safe streams, follow changes. Exports only.
 * The xenstore client is exported as "xen-channels/xenstore", the simulator as "xen-channels/sim".
 */

export type { ChannelEvent, ChannelWatcher, LocateOptions } from './api/channels.js';
export {
  DEFAULT_RUN_DIR,
  diffChannels,
  getChannel,
  listChannels,
  waitForChannel,
  watchChannels,
} from './api/channels.js';
export {
  ChannelHangupError,
  ChannelNotFoundError,
  ChannelUnusableError,
  RawModeError,
  TimeoutError,
} from './api/errors.js';
export type { OpenChannelOptions } from './api/open.js';
export { ChannelStream, openChannel, setRawMode } from './api/open.js';
export type { ChannelInfo } from './api/published.js';
export { isUsable } from './api/published.js';
export { isXenChannelsError, XenChannelsError } from './errors.js';
