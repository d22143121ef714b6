/*
 * The local socket API, for programs not written in Node: JSON lines over a Unix socket
 * (default /run/xen-channels/api.sock), served by the agent. Root-only by default (mode
 * 0600); a group may be given access (mode 0660). One request per line, one or more reply
 * lines, each carrying the request's "id" when it had one:
 *   {"op":"list"}                          -> {"ok":true,"channels":[...]}
 *   {"op":"resolve","name":"N"}            -> {"ok":true,"channel":{...},"path":"/dev/vport/N"}
 *   {"op":"wait","name":"N","timeoutMs":T} -> the same as resolve, once N is usable
 *   {"op":"subscribe"}                     -> {"ok":true,"subscribed":true}, then one
 *                                             {"event":"added|changed|removed","channel":{...}}
 *                                             per change until the client disconnects
 * Errors: {"ok":false,"error":{"code":"ENOCHANNEL|ETIMEDOUT|EBADREQUEST|...","message":"..."}};
 * the connection stays usable. Lines over 64 KiB close the connection.
 * Layer: service (I/O: a net.Server); answers come from the published channel list through
 * the public API, so the socket and the library can never disagree. close() ends every
 * connection, wait and subscription.
 */
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { type LocateOptions, listChannels, requireChannel, waitForChannel, watchChannels } from '../api/channels.js';
import { ChannelUnusableError } from '../api/errors.js';
import { isUsable } from '../api/published.js';
import { isXenChannelsError } from '../errors.js';

const LINE_MAX = 64 * 1024;

export interface LocalSocketOptions extends LocateOptions {
  readonly path: string;
  /** Give this group id access (mode 0660); default root only (0600). */
  readonly gid?: number;
}

type Reply = Record<string, unknown>;

function errorReply(err: unknown): Reply {
  const code = isXenChannelsError(err) ? err.code : 'EFAILED';
  return { ok: false, error: { code, message: err instanceof Error ? err.message : String(err) } };
}

function badRequest(message: string): Reply {
  return { ok: false, error: { code: 'EBADREQUEST', message } };
}

export class LocalSocketServer {
  private readonly server: Server;
  private readonly options: LocalSocketOptions;
  private readonly connections = new Set<{ socket: Socket; stop: AbortController }>();

  private constructor(options: LocalSocketOptions) {
    this.options = options;
    // allowHalfOpen: a client may send its requests and shut its side (echo ... | socat) and
    // still get every reply; the server ends its side once nothing is pending.
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.serve(socket));
  }

  /** Listens on options.path (replacing a stale socket file) with the requested access. */
  static async start(options: LocalSocketOptions): Promise<LocalSocketServer> {
    const server = new LocalSocketServer(options);
    await mkdir(dirname(options.path), { recursive: true });
    await rm(options.path, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.server.listen(options.path, () => resolve());
    });
    if (options.gid !== undefined) await chown(options.path, 0, options.gid);
    await chmod(options.path, options.gid === undefined ? 0o600 : 0o660);
    return server;
  }

  private serve(socket: Socket): void {
    const connection = { socket, stop: new AbortController() };
    this.connections.add(connection);
    let buffered = '';
    let pending = 0;
    let ended = false;
    const send = (reply: Reply, id: unknown): void => {
      if (!socket.destroyed) socket.write(`${JSON.stringify(id === undefined ? reply : { id, ...reply })}\n`);
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > LINE_MAX && !buffered.includes('\n')) {
        send(badRequest(`request line longer than ${LINE_MAX} bytes`), undefined);
        socket.end();
        return;
      }
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) {
          pending++;
          void this.handle(line, connection.stop.signal, send).finally(() => {
            pending--;
            if (ended && pending === 0) socket.end();
          });
        }
        newline = buffered.indexOf('\n');
      }
    });
    socket.on('end', () => {
      ended = true;
      if (pending === 0) socket.end();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      connection.stop.abort();
      this.connections.delete(connection);
    });
  }

  private async handle(line: string, signal: AbortSignal, send: (reply: Reply, id: unknown) => void): Promise<void> {
    let request: { op?: unknown; name?: unknown; timeoutMs?: unknown; id?: unknown };
    try {
      request = JSON.parse(line);
      if (typeof request !== 'object' || request === null) throw new Error('not an object');
    } catch {
      send(badRequest('each line must be one JSON object, e.g. {"op":"list"}'), undefined);
      return;
    }
    const { id } = request;
    const where: LocateOptions = { runDir: this.options.runDir };
    try {
      if (request.op === 'list') {
        send({ ok: true, channels: await listChannels(where) }, id);
      } else if (request.op === 'resolve' || request.op === 'wait') {
        if (typeof request.name !== 'string') throw new TypeError('"name" must be a string');
        let channel = await requireChannel(request.name, where).catch((err) => {
          if (request.op === 'wait') return undefined;
          throw err;
        });
        if (request.op === 'wait' && (!channel || !isUsable(channel))) {
          const timeoutMs = typeof request.timeoutMs === 'number' ? request.timeoutMs : undefined;
          channel = await waitForChannel(request.name, { ...where, timeoutMs, signal });
        }
        if (!channel || !isUsable(channel)) throw new ChannelUnusableError(request.name, channel?.problems ?? []);
        send({ ok: true, channel, path: channel.links[0] }, id);
      } else if (request.op === 'subscribe') {
        const watcher = await watchChannels({ ...where, signal });
        send({ ok: true, subscribed: true }, id);
        for await (const event of watcher) send({ event: event.type, channel: event.channel }, id);
      } else {
        send(badRequest(`unknown op ${JSON.stringify(request.op)}; ops: list, resolve, wait, subscribe`), id);
      }
    } catch (err) {
      if (signal.aborted) return;
      send(err instanceof TypeError ? badRequest(err.message) : errorReply(err), id);
    }
  }

  /** Stops listening and ends every connection (waits and subscriptions included). */
  async close(): Promise<void> {
    for (const c of this.connections) {
      c.stop.abort();
      c.socket.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.options.path, { force: true });
  }
}
