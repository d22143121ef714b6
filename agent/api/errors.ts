/*
 * Errors of the application API: a channel that does not exist or cannot be used, a wait
 * that timed out (saying what was seen), a tty that hung up because the channel was
 * unplugged, a tty that could not be put in raw mode. Layer: pure.
 */
import { XenChannelsError } from '../errors.js';

export class ChannelNotFoundError extends XenChannelsError {
  readonly channel: string;

  constructor(name: string, seen: readonly string[]) {
    const others = seen.length ? `channels present: ${seen.join(', ')}` : 'no channels are present';
    super('ENOCHANNEL', `no Xen channel named ${JSON.stringify(name)} (${others}; is the xen-channels agent running?)`);
    this.channel = name;
  }
}

export class ChannelUnusableError extends XenChannelsError {
  readonly channel: string;

  constructor(name: string, problems: readonly string[]) {
    super('EUNUSABLE', `Xen channel ${name} cannot be used now: ${problems.join('; ') || 'it has no tty yet'}`);
    this.channel = name;
  }
}

export class TimeoutError extends XenChannelsError {
  constructor(what: string, ms: number, seen: string) {
    super('ETIMEDOUT', `timed out after ${ms} ms waiting for ${what}; ${seen}`);
  }
}

/** The channel's tty hung up: dom0 unplugged the channel (or the guest is shutting down). */
export class ChannelHangupError extends XenChannelsError {
  readonly channel: string;

  constructor(name: string, options?: { cause?: unknown }) {
    super('EHANGUP', `Xen channel ${name} was unplugged (its tty hung up)`, options);
    this.channel = name;
  }
}

export class RawModeError extends XenChannelsError {
  constructor(tty: string, detail: string, options?: { cause?: unknown }) {
    super('ERAWMODE', `cannot put ${tty} in raw mode: ${detail}`, options);
  }
}
