/*
 * The published channel list: /run/xen-channels/channels.json, written by the agent after
 * every reconcile (atomically, world-readable) and read by the library, the CLI and the local
 * socket, so that applications need neither root nor xenstore to find their channel.
 * Layer: pure (format and parsing); the agent writes it through effects/files.ts.
 * Invariant: only validated names and paths built from the dev root appear in it.
 */

export const PUBLISHED_FILE = 'channels.json';
export const PUBLISHED_VERSION = 1;

/** One named channel as applications see it. */
export interface ChannelInfo {
  readonly name: string;
  readonly devid: number;
  /** The tty, e.g. "/dev/hvc2"; undefined when the channel has no usable tty now. */
  readonly tty: string | undefined;
  /** xenbus state of the frontend: "Connected", "Closing", ... */
  readonly state: string;
  /** Absolute link paths: ["/dev/vport/<name>", ...]; empty when not usable. */
  readonly links: readonly string[];
  /** Why the channel cannot be used, when it cannot. */
  readonly problems: readonly string[];
}

export interface PublishedList {
  readonly version: number;
  readonly channels: readonly ChannelInfo[];
}

/** True when an application can open the channel now. */
export function isUsable(channel: ChannelInfo): boolean {
  return channel.tty !== undefined && channel.links.length > 0;
}

export function renderPublished(channels: readonly ChannelInfo[]): string {
  return `${JSON.stringify({ version: PUBLISHED_VERSION, channels } satisfies PublishedList, null, 2)}\n`;
}

/** Parses the file's text; throws a plain Error saying what is wrong. */
export function parsePublished(text: string): PublishedList {
  const data = JSON.parse(text) as Partial<PublishedList>;
  if (data.version !== PUBLISHED_VERSION || !Array.isArray(data.channels)) {
    throw new Error(`not a version ${PUBLISHED_VERSION} channel list`);
  }
  const channels = data.channels.filter(
    (c): c is ChannelInfo =>
      typeof c === 'object' &&
      c !== null &&
      typeof c.name === 'string' &&
      typeof c.devid === 'number' &&
      (c.tty === undefined || typeof c.tty === 'string') &&
      Array.isArray(c.links) &&
      Array.isArray(c.problems),
  );
  return { version: PUBLISHED_VERSION, channels };
}
