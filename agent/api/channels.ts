/*
 * Finding channels by name, for applications: listChannels(), getChannel(), watchChannels(),
 * waitForChannel(). They read the list the agent publishes (/run/xen-channels/channels.json)
 * and follow its changes with an inotify watch on its directory, so they need neither root
 * nor xenstore access, and
 * they work the same on a simulated guest (pass its run directory).
 * Layer: library (file reads and a file watch). Each watcher is closed by close()/abort;
 * nothing keeps running after it.
 */
import { type FSWatcher, watch as fsWatch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ChannelNotFoundError, TimeoutError } from './errors.js';
import { type ChannelInfo, isUsable, PUBLISHED_FILE, parsePublished } from './published.js';

export interface LocateOptions {
  /** The agent's run directory (default /run/xen-channels; a simulated guest's <root>/run/xen-channels). */
  readonly runDir?: string;
}

export const DEFAULT_RUN_DIR = '/run/xen-channels';

function listPath(options: LocateOptions): string {
  return join(options.runDir ?? DEFAULT_RUN_DIR, PUBLISHED_FILE);
}

/**
 * Every named channel of this guest, usable or not. An empty list when the agent has not
 * published anything yet.
 * @throws Error when the published file exists but cannot be read or parsed
 */
export async function listChannels(options: LocateOptions = {}): Promise<ChannelInfo[]> {
  let text: string;
  try {
    text = await readFile(listPath(options), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return [...parsePublished(text).channels];
}

/** The channel called `name`, or undefined. */
export async function getChannel(name: string, options: LocateOptions = {}): Promise<ChannelInfo | undefined> {
  return (await listChannels(options)).find((c) => c.name === name);
}

export type ChannelEvent =
  | { readonly type: 'added'; readonly channel: ChannelInfo }
  | { readonly type: 'changed'; readonly channel: ChannelInfo; readonly before: ChannelInfo }
  | { readonly type: 'removed'; readonly channel: ChannelInfo };

/** The events that turn list `before` into list `after`. Pure. */
export function diffChannels(before: readonly ChannelInfo[], after: readonly ChannelInfo[]): ChannelEvent[] {
  const events: ChannelEvent[] = [];
  const old = new Map(before.map((c) => [c.name, c]));
  for (const channel of after) {
    const was = old.get(channel.name);
    if (!was) events.push({ type: 'added', channel });
    else if (JSON.stringify(was) !== JSON.stringify(channel)) events.push({ type: 'changed', channel, before: was });
    old.delete(channel.name);
  }
  for (const channel of old.values()) events.push({ type: 'removed', channel });
  return events;
}

export interface ChannelWatcher extends AsyncIterable<ChannelEvent> {
  /** Stops watching; iteration finishes. */
  close(): Promise<void>;
}

/**
 * Calls `onChange` whenever something in `dir` changes, and once when `dir` appears. Watches
 * the directory itself (inotify sees the agent's atomic rename of the list every time), or
 * its parent until it exists. Returns a function that stops everything.
 */
function watchDirectory(dir: string, onChange: () => void): () => void {
  let dirWatcher: FSWatcher | undefined;
  let parentWatcher: FSWatcher | undefined;
  let stopped = false;
  const watchParent = (): void => {
    if (stopped || parentWatcher) return;
    try {
      parentWatcher = fsWatch(dirname(dir), (_event, name) => {
        if (name === basename(dir) && watchDir()) {
          parentWatcher?.close();
          parentWatcher = undefined;
        }
      });
    } catch {
      // The parent is missing too: nothing can appear below it until it exists; a later
      // call of watchChannels() will see it.
    }
  };
  const watchDir = (): boolean => {
    if (stopped) return true;
    try {
      dirWatcher = fsWatch(dir, () => onChange());
    } catch {
      return false;
    }
    const lost = (): void => {
      dirWatcher?.close();
      dirWatcher = undefined;
      onChange();
      watchParent();
    };
    dirWatcher.once('error', lost);
    onChange();
    return true;
  };
  if (!watchDir()) watchParent();
  return () => {
    stopped = true;
    dirWatcher?.close();
    parentWatcher?.close();
  };
}

/**
 * Channel events from now on: 'added' for each channel present when watching starts, then
 * 'added' / 'changed' / 'removed' as the agent updates its list.
 */
export async function watchChannels(options: LocateOptions & { signal?: AbortSignal } = {}): Promise<ChannelWatcher> {
  const queue: ChannelEvent[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  let current: ChannelInfo[] = [];
  let failure: unknown;
  let refreshing: Promise<void> | undefined;
  let again = false;
  // One read at a time, and one more if anything changed meanwhile: lists never apply out of order.
  const refresh = (): void => {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = (async () => {
      do {
        again = false;
        try {
          const next = await listChannels(options);
          queue.push(...diffChannels(current, next));
          current = next;
        } catch (err) {
          failure = err;
        }
      } while (again && !closed);
      refreshing = undefined;
      wake?.();
    })();
  };
  const stopWatching = watchDirectory(options.runDir ?? DEFAULT_RUN_DIR, refresh);
  refresh();
  await refreshing;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    options.signal?.removeEventListener('abort', onAbort);
    stopWatching();
    await refreshing;
    wake?.();
  };
  const onAbort = (): void => void close();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) await close();
  return {
    close,
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          const event = queue.shift();
          if (event) {
            yield event;
            continue;
          }
          if (failure) throw failure;
          if (closed) return;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      } finally {
        await close();
      }
    },
  };
}

/**
 * Resolves with the channel once it is usable (present with a tty and links), at once if it
 * already is, including after hotplug.
 * @throws TimeoutError naming what was seen meanwhile; the signal's reason when aborted
 */
export async function waitForChannel(
  name: string,
  options: LocateOptions & { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<ChannelInfo> {
  if (options.signal?.aborted) throw options.signal.reason;
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const timeoutMs = options.timeoutMs;
  const timer =
    timeoutMs === undefined ? undefined : setTimeout(() => controller.abort(new Error('timeout')), timeoutMs);
  let last: ChannelInfo | undefined;
  try {
    const watcher = await watchChannels({ runDir: options.runDir, signal: controller.signal });
    for await (const event of watcher) {
      if (event.channel.name !== name) continue;
      last = event.type === 'removed' ? undefined : event.channel;
      if (last && isUsable(last)) return last;
    }
    if (options.signal?.aborted) throw options.signal.reason;
    const seen = last
      ? `channel ${name} is present but not usable: ${last.problems.join('; ') || `state ${last.state}, no tty yet`}`
      : `no channel named ${name} appeared (present: ${(await listChannels(options)).map((c) => c.name).join(', ') || 'none'})`;
    throw new TimeoutError(`Xen channel ${name}`, timeoutMs ?? 0, seen);
  } finally {
    if (timer) clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** The channel called `name` (usable or not: callers check). @throws ChannelNotFoundError */
export async function requireChannel(name: string, options: LocateOptions = {}): Promise<ChannelInfo> {
  const channels = await listChannels(options);
  const channel = channels.find((c) => c.name === name);
  if (!channel)
    throw new ChannelNotFoundError(
      name,
      channels.map((c) => c.name),
    );
  return channel;
}
