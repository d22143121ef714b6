/*
 * The long-running agent (`xen-channel agent`, the systemd service): one xenstore watch on
 * device/console, a reconcile after every change. Layer: service over an injected Env.
 * Behaviour: events that arrive while a reconcile runs are folded into one more run; no
 * timer runs while nothing happens; a failed reconcile is retried with backoff (1 s doubling
 * to 60 s) until one succeeds or a new event arrives; while a console waits for the guest
 * kernel's probe, one timer re-runs the reconcile when its grace time ends (to report it stuck); a lost xenstore connection is
 * re-established with backoff and the watch re-registered (which fires it, so the agent
 * rescans). stop() (SIGTERM) lets a running reconcile finish, then closes everything.
 */
import { EventEmitter } from 'node:events';
import { dirname } from 'node:path';
import type { Env } from '../effects/env.js';
import { announceAgent, removeStaleTemporaries } from '../effects/files.js';
import { CONSOLE_DIR, type ReconcileResult, reconcile, rulesPath, statePath } from '../reconcile.js';
import { XenstoreClient } from '../xenstore/client.js';
import { ConnectionClosedError } from '../xenstore/errors.js';
import { RawHolder } from './raw-holder.js';

export interface AgentEvents {
  reconciled: [result: ReconcileResult];
  failed: [error: Error];
}

const RETRY_MS = { first: 1000, max: 60_000 };

export class Agent {
  private readonly env: Env;
  private readonly client: XenstoreClient;
  private readonly emitter = new EventEmitter();
  private readonly stopping = new AbortController();
  private running: Promise<void> | undefined;
  private again = false;
  private retryDelay = RETRY_MS.first;
  private retryTimer: AbortController | undefined;
  private loop: Promise<void> = Promise.resolve();
  /** Withdraws the announcement that lets the udev helper stand aside. */
  private unannounce: () => Promise<void> = async () => {};
  /** Problems this process has logged (see ReconcileOptions.logged). */
  private readonly logged = new Map<string, readonly string[]>();
  /** Keeps each linked channel's tty open in raw mode (see raw-holder.ts); off with holdRaw: false. */
  readonly rawHolder: RawHolder | undefined;

  private constructor(env: Env, client: XenstoreClient, holdRaw: boolean) {
    this.env = env;
    this.client = client;
    this.rawHolder = holdRaw ? new RawHolder(env) : undefined;
  }

  /** Connects to xenstore, registers the watch (which runs the first reconcile) and returns. */
  static async start(env: Env, options: { holdRaw?: boolean } = {}): Promise<Agent> {
    const client = await XenstoreClient.connect({
      transport: env.xenstore,
      clock: env.clock,
      retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 5000),
    });
    client.on('reconnecting', ({ attempt, delayMs, cause }) =>
      env.log.log(
        'warn',
        `xenstore connection lost (${String((cause as Error)?.message ?? cause)}); reconnecting in ${delayMs} ms (attempt ${attempt})`,
      ),
    );
    const agent = new Agent(env, client, options.holdRaw ?? true);
    agent.unannounce = await announceAgent(env.roots.run).catch(async (err: Error) => {
      await client.close();
      throw err;
    });
    // A process killed while writing (this agent's predecessor, a udev helper) leaves its
    // temporary file behind; nothing else would ever remove it.
    for (const dir of [dirname(statePath(env)), dirname(rulesPath(env))]) {
      for (const path of await removeStaleTemporaries(dir).catch(() => []))
        env.log.log('info', `removed ${path}, left by a process that died while writing it`);
    }
    const watch = await client.watch(CONSOLE_DIR);
    agent.loop = (async () => {
      for await (const _ of watch) agent.trigger();
    })().catch((err: Error) => {
      if (!agent.stopping.signal.aborted)
        env.log.log('error', `the xenstore watch on ${CONSOLE_DIR} ended: ${err.message}`);
    });
    env.log.log(
      'info',
      `watching ${CONSOLE_DIR} through ${env.xenstore.description} (links: ${env.linkMode === 'udev' ? 'udev rules' : 'direct'})`,
    );
    return agent;
  }

  on<E extends keyof AgentEvents>(event: E, listener: (...args: AgentEvents[E]) => void): this {
    this.emitter.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Asks for a reconcile; folded into the running one's follow-up when one is running. */
  trigger(): void {
    if (this.stopping.signal.aborted) return;
    this.retryTimer?.abort();
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.runUntilQuiet().finally(() => {
      this.running = undefined;
    });
  }

  private async runUntilQuiet(): Promise<void> {
    do {
      this.again = false;
      try {
        const result = await reconcile(this.env, this.client, {
          logged: this.logged,
          releaseBeforeProbe: async (slots) => this.rawHolder?.release(slots),
        });
        await this.rawHolder?.update(result.channels);
        this.retryDelay = RETRY_MS.first;
        this.emitter.emit('reconciled', result);
        // A console waiting for its probe is judged once its grace time is over.
        if (result.recheckAfterMs !== undefined && !this.again) this.scheduleRetry(result.recheckAfterMs);
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        // A lost connection has its own line ("reconnecting ..."), and the watch registered
        // again on reconnection starts a new pass: one line for one event.
        this.env.log.log(
          error instanceof ConnectionClosedError ? 'debug' : 'error',
          `could not update the channel links: ${error.message}; retrying in ${this.retryDelay / 1000} s`,
        );
        this.emitter.emit('failed', error);
        this.scheduleRetry();
        return;
      }
    } while (this.again && !this.stopping.signal.aborted);
  }

  /** One timer at a time: after a failure (backoff), or to judge a console still waiting. */
  private scheduleRetry(delayMs?: number): void {
    this.retryTimer?.abort();
    const timer = new AbortController();
    this.retryTimer = timer;
    const delay = delayMs ?? this.retryDelay;
    if (delayMs === undefined) this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MS.max);
    this.env.clock.sleep(delay, timer.signal).then(
      () => this.trigger(),
      () => {},
    );
  }

  /** Stops watching: a running reconcile finishes first; nothing is left running. */
  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    this.retryTimer?.abort();
    await this.running;
    await this.rawHolder?.close();
    await this.client.close();
    await this.unannounce();
    await this.loop;
  }
}
