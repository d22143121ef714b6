/*
 * QmpClient: a QEMU Machine Protocol client for the per-domain QEMU that serves a guest's
 * channels (libxl's /var/run/xen/qmp-libxl-<domid>). Layer: I/O over an injected Duplex and
 * clock; it knows no socket path. Protocol (QEMU docs/interop/qmp-spec): one JSON object per
 * line; the server greets with {"QMP": ...}; qmp_capabilities leaves negotiation mode; each
 * command gets exactly one {"return"} or {"error"} reply, in order, echoing our "id";
 * asynchronous {"event"} messages may come at any time and are skipped.
 * Invariants: commands are sent one at a time (QEMU's monitor is sequential); a reply whose id
 * is not the pending command's, or a line that is not a JSON object, is a QmpProtocolError
 * that closes the connection. close() (or the peer hanging up) rejects the pending command.
 */
import type { Duplex } from 'node:stream';
import type { Clock } from '../clock.js';
import { XenChannelsError } from '../errors.js';

/** QEMU answered a command with an error (class and description as QEMU gave them). */
export class QmpCommandError extends XenChannelsError {
  readonly command: string;
  readonly errorClass: string;
  readonly desc: string;

  constructor(command: string, errorClass: string, desc: string, where: string) {
    super('EQMP', `QEMU (${where}) refused ${command}: ${desc}`);
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/** The QMP stream broke the protocol, ended, or did not answer in time. */
export class QmpProtocolError extends XenChannelsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EQMPPROTO', message, options);
  }
}

const LINE_MAX = 1 << 20;

interface Pending {
  readonly id: number;
  readonly command: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export interface QmpOptions {
  readonly clock: Clock;
  /** Names the peer in messages, e.g. "QMP socket /var/run/xen/qmp-libxl-3". */
  readonly where: string;
  /** Per command (and for the greeting); default 10 s. */
  readonly timeoutMs?: number;
}

/** One QMP session. Create with QmpClient.open(). */
export class QmpClient {
  readonly #stream: Duplex;
  readonly #options: QmpOptions;
  #buffer = '';
  #pending: Pending | undefined;
  #greeting: ((error?: Error) => void) | undefined;
  #nextId = 1;
  #closed: Error | undefined;

  private constructor(stream: Duplex, options: QmpOptions) {
    this.#stream = stream;
    this.#options = options;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => this.#onData(chunk));
    stream.on('error', (error) =>
      this.#fail(new QmpProtocolError(`${options.where}: ${error.message}`, { cause: error })),
    );
    stream.on('close', () => this.#fail(new QmpProtocolError(`${options.where} closed the connection`)));
  }

  /**
   * Waits for the greeting on `stream` and negotiates capabilities.
   * @throws QmpProtocolError (no greeting in time, garbage, hang-up); QmpCommandError
   */
  static async open(stream: Duplex, options: QmpOptions): Promise<QmpClient> {
    const client = new QmpClient(stream, options);
    try {
      await client.#withTimeout(
        'the QMP greeting',
        new Promise<void>((resolve, reject) => {
          client.#greeting = (error) => (error ? reject(error) : resolve());
        }),
      );
      await client.execute('qmp_capabilities');
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /**
   * Runs one command; resolves to its "return" value.
   * @throws QmpCommandError when QEMU answers with an error; QmpProtocolError
   */
  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.#closed) throw this.#closed;
    if (this.#pending) throw new Error(`QMP ${command} sent while ${this.#pending.command} is pending`);
    const id = this.#nextId++;
    const reply = new Promise<unknown>((resolve, reject) => {
      this.#pending = { id, command, resolve, reject };
    });
    this.#stream.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    return this.#withTimeout(command, reply);
  }

  /** Ends the session; a pending command rejects. */
  close(): void {
    this.#fail(new QmpProtocolError(`${this.#options.where}: the QMP session was closed`));
  }

  async #withTimeout<T>(what: string, promise: Promise<T>): Promise<T> {
    const ms = this.#options.timeoutMs ?? 10_000;
    const stop = new AbortController();
    const timeout = this.#options.clock.sleep(ms, stop.signal).then(
      () => {
        this.#fail(new QmpProtocolError(`${this.#options.where}: no answer to ${what} within ${ms} ms`));
      },
      () => {},
    );
    try {
      return await promise;
    } finally {
      stop.abort();
      await timeout;
    }
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    for (let nl = this.#buffer.indexOf('\n'); nl >= 0; nl = this.#buffer.indexOf('\n')) {
      const line = this.#buffer.slice(0, nl).trim();
      this.#buffer = this.#buffer.slice(nl + 1);
      if (line) this.#onMessage(line);
      if (this.#closed) return;
    }
    if (this.#buffer.length > LINE_MAX) this.#fail(new QmpProtocolError(`${this.#options.where}: a line over 1 MiB`));
  }

  #onMessage(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      message = undefined;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      this.#fail(
        new QmpProtocolError(`${this.#options.where} sent a line that is not a JSON object: ${line.slice(0, 200)}`),
      );
      return;
    }
    const m = message as Record<string, unknown>;
    if ('QMP' in m) {
      const greeting = this.#greeting;
      this.#greeting = undefined;
      greeting?.();
      return;
    }
    if ('event' in m) return;
    const pending = this.#pending;
    if (!pending || m.id !== pending.id) {
      this.#fail(new QmpProtocolError(`${this.#options.where} sent a reply nobody asked for: ${line.slice(0, 200)}`));
      return;
    }
    this.#pending = undefined;
    if ('error' in m) {
      const error = (m.error ?? {}) as Record<string, unknown>;
      pending.reject(
        new QmpCommandError(
          pending.command,
          String(error.class ?? ''),
          String(error.desc ?? line),
          this.#options.where,
        ),
      );
    } else {
      pending.resolve(m.return);
    }
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    this.#greeting?.(error);
    this.#greeting = undefined;
    this.#pending?.reject(error);
    this.#pending = undefined;
    this.#stream.destroy();
  }
}
