/*
 * Raw mode that survives: the hvc driver resets a tty's settings when its last opener
 * closes it, so a program that opens /dev/vport/<name> without setting raw mode itself (such
 * as qemu-guest-agent in its default mode) would get echo and \n -> \r\n. The agent keeps
 * one descriptor open on each linked channel's tty, in raw mode, and never reads from it: no
 * byte is taken from the channel, and every later opener finds the tty raw.
 * Layer: service effect (opens ttys, runs stty through api/open.ts's setRawMode).
 * A tty whose channel goes away (or moves to another slot) is released, before the pass opens
 * that slot to check it is free (release()); close() releases all.
 */
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { setRawMode } from '../api/open.js';
import type { Env } from '../effects/env.js';
import type { ChannelReport } from '../reconcile.js';

export class RawHolder {
  private readonly env: Env;
  /** "devid@slot" -> the held tty. */
  private readonly held = new Map<string, FileHandle>();

  constructor(env: Env) {
    this.env = env;
  }

  /** The ttys held now, for status and tests. */
  get ttys(): string[] {
    return [...this.held.keys()].map((k) => join(this.env.roots.dev, `hvc${k.split('@')[1]}`));
  }

  /** Holds exactly the ttys of the linked channels in `channels`. */
  async update(channels: readonly ChannelReport[]): Promise<void> {
    const wanted = new Map<string, ChannelReport>(
      channels.flatMap((c) =>
        c.links.length > 0 && c.slot !== undefined ? [[`${c.devid}@${c.slot}`, c] as const] : [],
      ),
    );
    for (const [key, handle] of [...this.held]) {
      if (wanted.has(key)) continue;
      this.held.delete(key);
      await handle.close().catch(() => {});
    }
    for (const [key, channel] of wanted) {
      if (this.held.has(key)) continue;
      const tty = join(this.env.roots.dev, `hvc${channel.slot}`);
      let handle: FileHandle | undefined;
      try {
        handle = await open(tty, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
        await setRawMode(handle.fd, tty);
        this.held.set(key, handle);
      } catch (err) {
        await handle?.close().catch(() => {});
        // A channel being unplugged hangs its tty up between the pass and this open: that
        // is expected (the next pass drops it), so only a tty that is still there is news.
        const stillThere = (await this.env.probeTty(tty)) === 'occupied';
        this.env.log.log(
          stillThere ? 'warn' : 'debug',
          `channel ${channel.name}: cannot keep ${tty} in raw mode (${(err as Error).message}); programs that do not set raw mode themselves may see echo and \\r\\n`,
        );
      }
    }
  }

  /**
   * Lets go of the ttys held in `slots` (slots whose channel went away: the pass is about to
   * open them, which must not happen while the old tty is still held; see reconcile.ts).
   */
  async release(slots: readonly number[]): Promise<void> {
    for (const [key, handle] of [...this.held]) {
      if (!slots.includes(Number(key.split('@')[1]))) continue;
      this.held.delete(key);
      await handle.close().catch(() => {});
    }
  }

  async close(): Promise<void> {
    await this.update([]);
  }
}
