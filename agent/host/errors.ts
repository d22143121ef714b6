/*
 * Errors of the dom0 host commands: the domain, the channel, the device model or the guest
 * is not what the operation needs, or the guest did not answer in time. Each message says
 * which domain and channel, and what to do. Layer: pure.
 */
import { XenChannelsError } from '../errors.js';

/** The operation cannot be done as asked (bad domain, devid, name, no device model...). */
export class HostError extends XenChannelsError {}

/** No channel matches (detach of a channel that is not there). */
export class HostChannelNotFoundError extends XenChannelsError {
  constructor(message: string) {
    super('ENOCHANNEL', message);
  }
}

/** The guest did not reach the expected xenbus state in time. */
export class HostTimeoutError extends XenChannelsError {
  constructor(message: string) {
    super('ETIMEDOUT', message);
  }
}
