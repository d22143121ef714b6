/*
 * openChannel(): a Node Duplex on a channel's tty in binary-safe raw mode.
 * Layer: library (tty I/O, one stty process per open).
 * Why it is built this way:
 *  - An hvc tty starts in cooked mode (echo, canonical input, signals, \n -> \r\n), which
 *    corrupts binary data and echoes the host's requests back. Node's setRawMode keeps output
 *    processing on, and Node has no termios API, so raw mode (cfmakeraw's settings) is set by
 *    running stty on a descriptor we hold open, then read back and checked flag by flag. The
 *    hvc driver resets termios on the last close, so the settings live as long as the stream.
 *  - Input: tty.ReadStream (libuv's tty handle: epoll, no threadpool, flow control).
 *  - Output: fs.write on a second, blocking descriptor. tty.WriteStream makes its descriptor
 *    blocking, so a host that stops draining the channel would freeze the event loop; with
 *    fs.write at most one threadpool thread waits, and the stream applies backpressure.
 *  - A hang-up (the channel was unplugged: reads give EOF or EIO, writes EIO) ends the
 *    stream with ChannelHangupError, unless `reopen` is set: then the stream waits for the
 *    agent to list the channel again and carries on with its new tty; writes made in
 *    between are held until then.
 * Opened with O_NOCTTY, so the tty never becomes the process's controlling terminal.
 */
import { spawn } from 'node:child_process';
import { close, constants, open, write } from 'node:fs';
import { Duplex } from 'node:stream';
import { ReadStream } from 'node:tty';
import { promisify } from 'node:util';
import { type LocateOptions, requireChannel, watchChannels } from './channels.js';
import { ChannelHangupError, ChannelUnusableError, RawModeError } from './errors.js';
import { type ChannelInfo, isUsable } from './published.js';

const openFd = promisify(open);
const closeFd = promisify(close);

/** Opening failed because the tty went away again (the list was behind the kernel). */
function isGoneError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENODEV' || code === 'ENXIO' || code === 'EIO';
}

/** The stty arguments equivalent to cfmakeraw(3). */
const RAW_ARGS = ['raw', '-echo', '-echonl', '-iexten', 'cs8', '-parenb'];
/** Flags `stty -a` must show afterwards. */
const RAW_FLAGS = ['-opost', '-echo', '-icanon', '-isig', '-icrnl', '-ixon', '-iexten'];

function stty(fd: number, args: readonly string[], tty: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('stty', [...args], { stdio: [fd, 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.once('error', (err) =>
      reject(new RawModeError(tty, `stty could not run (${err.message}); is coreutils installed?`, { cause: err })),
    );
    child.once('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new RawModeError(tty, `stty ${args.join(' ')} exited with ${code}: ${stderr.trim()}`));
    });
  });
}

/**
 * Puts the tty open on `fd` in cfmakeraw mode and checks that it took.
 * @throws RawModeError
 */
export async function setRawMode(fd: number, tty: string): Promise<void> {
  await stty(fd, RAW_ARGS, tty);
  const settings = new Set((await stty(fd, ['-a'], tty)).split(/[\s;]+/));
  const missing = RAW_FLAGS.filter((flag) => !settings.has(flag));
  if (missing.length > 0) throw new RawModeError(tty, `still set after stty: ${missing.join(' ')}`);
}

export interface OpenChannelOptions extends LocateOptions {
  /** After a hang-up, wait for the channel to come back and continue on its new tty. */
  readonly reopen?: boolean;
}

interface Attached {
  readonly info: ChannelInfo;
  readonly input: ReadStream;
  readonly outFd: number;
}

/** A channel's tty in raw mode; see openChannel(). */
export class ChannelStream extends Duplex {
  readonly name: string;
  private readonly options: OpenChannelOptions;
  private attached: Attached | undefined;
  private reattaching: Promise<void> | undefined;
  private readonly closing = new AbortController();

  /** @internal use openChannel() */
  constructor(name: string, options: OpenChannelOptions) {
    super({ allowHalfOpen: false });
    this.name = name;
    this.options = options;
  }

  /** The channel as it was when the current tty was opened. */
  get channel(): ChannelInfo | undefined {
    return this.attached?.info;
  }

  /** @internal opens `info.tty`, sets raw mode, starts reading. */
  async attach(info: ChannelInfo): Promise<void> {
    const tty = info.tty;
    if (!tty || !isUsable(info)) throw new ChannelUnusableError(info.name, info.problems);
    const inFd = await openFd(tty, constants.O_RDWR | constants.O_NOCTTY);
    let outFd: number | undefined;
    try {
      await setRawMode(inFd, tty);
      outFd = await openFd(tty, constants.O_WRONLY | constants.O_NOCTTY);
    } catch (err) {
      await closeFd(inFd).catch(() => {});
      if (outFd !== undefined) await closeFd(outFd).catch(() => {});
      throw err;
    }
    const input = new ReadStream(inFd);
    const attached: Attached = { info, input, outFd };
    this.attached = attached;
    input.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) input.pause();
    });
    input.once('end', () => this.onHangup(attached, undefined));
    input.once('error', (err) => this.onHangup(attached, err));
    if (this.readableFlowing !== false) input.resume();
  }

  private detach(attached: Attached): void {
    if (this.attached !== attached) return;
    this.attached = undefined;
    attached.input.destroy();
    close(attached.outFd, () => {});
  }

  private onHangup(attached: Attached, cause: Error | undefined): void {
    if (this.attached !== attached || this.destroyed) return;
    this.detach(attached);
    if (!this.options.reopen) {
      this.destroy(new ChannelHangupError(this.name, { cause }));
      return;
    }
    this.emit('hangup');
    this.reattaching = this.reattach(attached.info)
      .catch((err: Error) => {
        if (!this.destroyed) this.destroy(err);
      })
      .finally(() => {
        this.reattaching = undefined;
      });
  }

  /**
   * After a hang-up: wait until the agent's list has changed for this name (so it has seen
   * the unplug; the old entry may still name the dead tty), then until the channel is usable,
   * and open it. If opening fails (the list was already out of date again), wait for the
   * next change and try once more.
   */
  private async reattach(hungUp: ChannelInfo): Promise<void> {
    const watcher = await watchChannels({ runDir: this.options.runDir, signal: this.closing.signal });
    try {
      let current: ChannelInfo | undefined = hungUp;
      let seenChange = false;
      for await (const event of watcher) {
        if (event.channel.name !== this.name) continue;
        const next = event.type === 'removed' ? undefined : event.channel;
        if (!seenChange && JSON.stringify(next) === JSON.stringify(current)) continue;
        seenChange = true;
        current = next;
        if (!current || !isUsable(current)) continue;
        try {
          await this.attach(current);
          this.emit('reopen', current);
          return;
        } catch (err) {
          if (!isGoneError(err)) throw err;
        }
      }
      throw new ChannelHangupError(this.name);
    } finally {
      await watcher.close();
    }
  }

  override _read(): void {
    this.attached?.input.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const send = (): void => {
      const attached = this.attached;
      if (!attached) {
        if (this.reattaching) this.reattaching.then(send, callback);
        else callback(new ChannelHangupError(this.name));
        return;
      }
      let offset = 0;
      const next = (): void => {
        write(attached.outFd, chunk, offset, chunk.length - offset, null, (err, written) => {
          if (err) {
            // EIO: the channel was unplugged while writing.
            this.onHangup(attached, err);
            if (this.options.reopen && !this.destroyed) send();
            else callback(new ChannelHangupError(this.name, { cause: err }));
            return;
          }
          offset += written;
          if (offset < chunk.length) next();
          else callback();
        });
      };
      next();
    };
    send();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.closing.abort();
    if (this.attached) this.detach(this.attached);
    callback(error);
  }
}

/**
 * Opens the channel called `name` as a binary-safe Duplex (raw tty: no echo, no line
 * editing, no signals, no \n -> \r\n). Call destroy() (or end()) when done.
 * @throws ChannelNotFoundError, ChannelUnusableError, RawModeError, or the open error
 */
export async function openChannel(name: string, options: OpenChannelOptions = {}): Promise<ChannelStream> {
  const info = await requireChannel(name, options);
  const stream = new ChannelStream(name, options);
  await stream.attach(info);
  return stream;
}
