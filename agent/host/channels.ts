/*
 * dom0 operations on a running guest's channels: attach (a QEMU character device over QMP,
 * then libxl's xenstore layout in one transaction, then wait for the guest to connect),
 * detach (the graceful Closing handshake, removal in one transaction, then chardev-remove)
 * and list. Layer: I/O over injected effects (xenstore client, QMP sessions, clock, lock);
 * no literal system paths here (see node-host.ts).
 * Invariants: the directories of a channel are never removed before its frontend reached
 * Closed (or never set up a ring): removing them under a connected QEMU made it read a freed
 * event channel in the lab. Changes to one domain's channels run under that domain's lock;
 * xenstore changes are transactions, retried on conflict by the client.
 * Spec: libxl_console.c (layout), xen/include/public/io/xenbus.h (states), QEMU qapi/char.json.
 */
import type { Clock } from '../clock.js';
import { validateName } from '../model/names.js';
import type { Transaction, XenstoreClient, XenstoreOperations } from '../xenstore/client.js';
import { XenstoreError } from '../xenstore/errors.js';
import { HostChannelNotFoundError, HostError, HostTimeoutError } from './errors.js';
import {
  backendDir,
  backendPath,
  type Connection,
  channelNodes,
  chardevBackend,
  chardevId,
  chardevsOf,
  chooseDevid,
  describeState,
  devidsOf,
  frontendDir,
  frontendPath,
  libxlPath,
  XenbusState,
} from './layout.js';
import { type QmpClient, QmpCommandError } from './qmp.js';

/** What the host operations need from the outside world. */
export interface HostEnv {
  readonly xs: XenstoreClient;
  /**
   * Opens a QMP session to the device model that serves `domid`'s channels.
   * @throws HostError ENODM when the domain has none
   */
  qmp(domid: number): Promise<QmpClient>;
  readonly clock: Clock;
  /** Whether a program accepts connections on the Unix socket at `path`. */
  socketInUse(path: string): Promise<boolean>;
  /** Runs `fn` holding the lock of domain `domid` against other xen-channels processes. */
  withDomainLock<T>(domid: number, fn: () => Promise<T>): Promise<T>;
  /** One progress line for the operator. */
  note(line: string): void;
}

export interface Domain {
  readonly domid: number;
  readonly name: string;
}

/** One secondary console of a guest, as xenstore shows it. */
export interface HostChannel {
  readonly domid: number;
  readonly domain: string;
  readonly devid: number;
  readonly name: string | undefined;
  /** Backend "connection": socket or pty (undefined for a plain console). */
  readonly connection: string | undefined;
  /** Backend "path" of a socket channel. */
  readonly path: string | undefined;
  /** Frontend "tty" (a pty channel's pty), when set. */
  readonly tty: string | undefined;
  readonly output: string | undefined;
  readonly frontendState: string | undefined;
  readonly backendState: string | undefined;
  /** Whether /libxl/<domid> records it (what `xl channel-list` and `xl destroy` read). */
  readonly recorded: boolean;
}

const readOr = async (ops: XenstoreOperations, path: string): Promise<string | undefined> => {
  try {
    return await ops.read(path);
  } catch (error) {
    if (error instanceof XenstoreError && error.code === 'ENOENT') return undefined;
    throw error;
  }
};

const listOr = async (ops: XenstoreOperations, path: string): Promise<string[]> => {
  try {
    return await ops.directory(path);
  } catch (error) {
    if (error instanceof XenstoreError && error.code === 'ENOENT') return [];
    throw error;
  }
};

/** The running domains (dom0 excluded), by domid. */
export async function listDomains(xs: XenstoreOperations): Promise<Domain[]> {
  const domains: Domain[] = [];
  for (const domid of devidsOf(await listOr(xs, '/local/domain')).sort((a, b) => a - b)) {
    if (domid === 0) continue;
    const name = await readOr(xs, `/local/domain/${domid}/name`);
    if (name !== undefined) domains.push({ domid, name });
  }
  return domains;
}

/**
 * The guest named or numbered `text`.
 * @throws HostError ENODOMAIN
 */
export async function resolveDomain(xs: XenstoreOperations, text: string): Promise<Domain> {
  const domains = await listDomains(xs);
  const found = /^\d+$/.test(text)
    ? domains.find((d) => d.domid === Number(text))
    : domains.find((d) => d.name === text);
  if (found) return found;
  if (text === '0' || text === 'Domain-0') {
    throw new HostError('ENODOMAIN', 'channels belong to guests, not to dom0: name a guest domain (see xl list)');
  }
  const running = domains.map((d) => `${d.name} (${d.domid})`).join(', ') || 'none';
  throw new HostError('ENODOMAIN', `no running guest ${JSON.stringify(text)} (guests: ${running}); see xl list`);
}

async function readChannel(xs: XenstoreOperations, domain: Domain, devid: number): Promise<HostChannel> {
  const fe = frontendPath(domain.domid, devid);
  const be = (await readOr(xs, `${fe}/backend`)) ?? backendPath(domain.domid, devid);
  return {
    domid: domain.domid,
    domain: domain.name,
    devid,
    name: (await readOr(xs, `${fe}/name`)) ?? (await readOr(xs, `${be}/name`)),
    connection: await readOr(xs, `${be}/connection`),
    path: await readOr(xs, `${be}/path`),
    tty: (await readOr(xs, `${fe}/tty`)) || undefined,
    output: await readOr(xs, `${fe}/output`),
    frontendState: await readOr(xs, `${fe}/state`),
    backendState: await readOr(xs, `${be}/state`),
    recorded: (await readOr(xs, libxlPath(domain.domid, devid))) !== undefined,
  };
}

/** The devids that have a frontend or a backend directory. */
async function usedDevids(xs: XenstoreOperations, domid: number): Promise<Set<number>> {
  return new Set([...devidsOf(await listOr(xs, frontendDir(domid))), ...devidsOf(await listOr(xs, backendDir(domid)))]);
}

async function channelsOf(xs: XenstoreOperations, domain: Domain): Promise<HostChannel[]> {
  const devids = [...(await usedDevids(xs, domain.domid))].filter((d) => d > 0).sort((a, b) => a - b);
  const channels: HostChannel[] = [];
  for (const devid of devids) channels.push(await readChannel(xs, domain, devid));
  return channels;
}

/** Every secondary console of `domain` (or of every guest), libxl's and attached ones alike. */
export async function listChannels(xs: XenstoreOperations, domain?: string): Promise<HostChannel[]> {
  const domains = domain === undefined ? await listDomains(xs) : [await resolveDomain(xs, domain)];
  const all: HostChannel[] = [];
  for (const d of domains) all.push(...(await channelsOf(xs, d)));
  return all;
}

/**
 * Waits until `path` satisfies `accept` (checked at once, then on every watch event) or
 * `timeoutMs` passes; resolves to the last value read and whether it was accepted.
 */
async function waitFor(
  env: HostEnv,
  path: string,
  accept: (value: string | undefined) => boolean,
  timeoutMs: number,
): Promise<{ value: string | undefined; ok: boolean }> {
  const watch = await env.xs.watch(path);
  const stop = new AbortController();
  let value: string | undefined;
  const timer = env.clock.sleep(timeoutMs, stop.signal).then(
    () => watch.close(),
    () => {},
  );
  try {
    for await (const _event of watch) {
      value = await readOr(env.xs, path);
      if (accept(value)) return { value, ok: true };
    }
    return { value, ok: false };
  } finally {
    stop.abort();
    await timer;
    await watch.close();
  }
}

const sameConnection = (channel: HostChannel, connection: Connection): boolean =>
  connection.kind === 'pty'
    ? channel.connection === 'pty'
    : channel.connection === 'socket' && channel.path === connection.path;

const showConnection = (connection: Connection): string =>
  connection.kind === 'pty' ? 'a pty' : `socket ${connection.path} (${connection.mode})`;

export interface AttachRequest {
  readonly domain: string;
  readonly name: string;
  readonly connection: Connection;
  readonly devid?: number;
  /** How long to wait for the guest to connect (frontend state 4). */
  readonly timeoutMs: number;
}

export interface AttachResult {
  readonly channel: HostChannel;
  /** The channel was already attached with this name and connection: nothing was changed. */
  readonly already: boolean;
}

/**
 * Adds a channel to a running guest and waits until the guest kernel connects it.
 * @throws HostError (ENODOMAIN, ENAME, EEXIST, EDEVID, ENODM, EQMP...), HostTimeoutError
 */
export async function attachChannel(env: HostEnv, request: AttachRequest): Promise<AttachResult> {
  const verdict = validateName(Buffer.from(request.name));
  if (!verdict.ok) {
    throw new HostError(
      'ENAME',
      `channel name "${verdict.shown}" is not accepted: ${verdict.reason} (the guest side would not link it)`,
    );
  }
  const domain = await resolveDomain(env.xs, request.domain);
  const where = `domain ${domain.name} (${domain.domid})`;

  const attached = await env.withDomainLock(domain.domid, async () => {
    const existing = (await channelsOf(env.xs, domain)).find((c) => c.name === request.name);
    if (existing) {
      if (sameConnection(existing, request.connection)) return { devid: existing.devid, already: true };
      throw new HostError(
        'EEXIST',
        `${where} already has a channel named ${request.name} (devid ${existing.devid}, ${existing.connection ?? 'no connection'} ${existing.path ?? existing.tty ?? ''}); detach it first or choose another name`,
      );
    }
    const { connection } = request;
    if (connection.kind === 'socket') {
      const user = (await listChannels(env.xs)).find((c) => c.connection === 'socket' && c.path === connection.path);
      if (user) {
        throw new HostError(
          'EINUSE',
          `${connection.path} is already the socket of channel ${user.name ?? '(unnamed)'} (devid ${user.devid}) of domain ${user.domain} (${user.domid}): a second QEMU socket there would take the path over; choose another --socket`,
        );
      }
    }
    if (connection.kind === 'socket' && connection.mode === 'listen' && (await env.socketInUse(connection.path))) {
      throw new HostError(
        'EINUSE',
        `a program already listens on ${connection.path}: QEMU would replace its socket; use --connect to have QEMU connect to it, or choose another --socket`,
      );
    }
    const choice = chooseDevid(await usedDevids(env.xs, domain.domid), request.devid);
    if ('error' in choice) throw new HostError('EDEVID', `${where}: ${choice.error}`);
    const { devid } = choice;
    const chardev = chardevId(devid);

    const qmp = await env.qmp(domain.domid);
    try {
      const present = await chardevLabels(qmp);
      // Left behind by an interrupted detach: nothing uses it, since the devid is free.
      if (present.has(chardev)) await qmp.execute('chardev-remove', { id: chardev });
      const added = await qmp.execute('chardev-add', { id: chardev, backend: chardevBackend(request.connection) });
      const tty = request.connection.kind === 'pty' ? ptyOf(added) : undefined;
      const nodes = channelNodes({
        domid: domain.domid,
        devid,
        name: request.name,
        connection: request.connection,
        chardev,
        ...(tty === undefined ? {} : { tty }),
      });
      try {
        await env.xs.transaction(async (tx) => {
          for (const path of [frontendPath(domain.domid, devid), backendPath(domain.domid, devid)]) {
            if ((await readOr(tx, path)) !== undefined) {
              throw new HostError('EEXIST', `${where}: ${path} appeared meanwhile; run attach again`);
            }
          }
          // A stale record (a channel removed without it) must not leak old keys into the new one.
          await tx.rm(libxlPath(domain.domid, devid)).catch(ignoreMissing);
          for (const node of nodes) await writeNode(tx, node.path, node.value, node.perms);
        });
      } catch (error) {
        await qmp.execute('chardev-remove', { id: chardev }).catch(() => {});
        throw error;
      }
    } finally {
      qmp.close();
    }
    env.note(`attached ${request.name} to ${where} as devid ${devid} (${showConnection(request.connection)})`);
    return { devid, already: false };
  });

  const fe = frontendPath(domain.domid, attached.devid);
  const state = await waitFor(
    env,
    `${fe}/state`,
    (v) => v === String(XenbusState.Connected) || v === undefined,
    request.timeoutMs,
  );
  if (!state.ok || state.value === undefined) {
    const seen =
      state.value === undefined ? 'its frontend directory is gone' : `frontend state ${describeState(state.value)}`;
    throw new HostTimeoutError(
      `the guest kernel of ${where} did not connect channel ${request.name} (devid ${attached.devid}) within ${request.timeoutMs / 1000} s: ${seen}. ` +
        'Its kernel may lack working channel support (Linux 5.16 up to the Nov 2023 hvc_xen fix cannot probe secondary consoles), or the guest is busy. ' +
        `The channel stays attached; check with xen-channel host list ${domain.domid}, remove it with xen-channel host detach ${domain.domid} --devid ${attached.devid}.`,
    );
  }
  return { channel: await readChannel(env.xs, domain, attached.devid), already: attached.already };
}

const ignoreMissing = (error: unknown): void => {
  if (!(error instanceof XenstoreError && error.code === 'ENOENT')) throw error;
};

async function writeNode(
  tx: Transaction,
  path: string,
  value: string,
  perms: Parameters<Transaction['setPerms']>[1],
): Promise<void> {
  await tx.write(path, value);
  await tx.setPerms(path, perms);
}

function ptyOf(added: unknown): string {
  const pty = (added as { pty?: unknown } | undefined)?.pty;
  if (typeof pty !== 'string')
    throw new HostError('EQMP', `QEMU's chardev-add answered without a pty: ${JSON.stringify(added)}`);
  return pty;
}

async function chardevLabels(qmp: QmpClient): Promise<Set<string>> {
  const list = await qmp.execute('query-chardev');
  if (!Array.isArray(list)) throw new HostError('EQMP', `QEMU's query-chardev answered ${JSON.stringify(list)}`);
  return new Set(list.map((c: { label?: unknown }) => String(c?.label)));
}

export interface DetachRequest {
  readonly domain: string;
  readonly name?: string;
  readonly devid?: number;
  /** How long to wait for the guest to close (frontend state 6). */
  readonly timeoutMs: number;
}

/**
 * Removes a channel from a running guest gracefully: Closing, wait for Closed, remove, then
 * the QEMU character device. When the guest does not close in time, the channel is left
 * Closing but present and HostTimeoutError says so.
 * @throws HostError, HostChannelNotFoundError, HostTimeoutError
 */
export async function detachChannel(env: HostEnv, request: DetachRequest): Promise<HostChannel> {
  const domain = await resolveDomain(env.xs, request.domain);
  const where = `domain ${domain.name} (${domain.domid})`;
  return env.withDomainLock(domain.domid, async () => {
    const channels = await channelsOf(env.xs, domain);
    const channel = channels.find((c) =>
      request.devid !== undefined ? c.devid === request.devid : c.name === request.name,
    );
    if (!channel) {
      const what = request.devid !== undefined ? `devid ${request.devid}` : `named ${request.name}`;
      const present = channels.map((c) => `${c.devid} ${c.name ?? '(unnamed)'}`).join(', ') || 'none';
      throw new HostChannelNotFoundError(`${where} has no channel ${what} (channels: ${present}); nothing to detach`);
    }
    const { devid } = channel;
    const fe = frontendPath(domain.domid, devid);
    const be = backendPath(domain.domid, devid);
    await env.xs.transaction(async (tx) => {
      if ((await readOr(tx, be)) === undefined) return;
      await tx.write(`${be}/online`, '0');
      await tx.write(`${be}/state`, String(XenbusState.Closing));
    });
    // A frontend that never set up its ring (still Initialising, no event channel) has nothing to close.
    const neverConnected =
      channel.frontendState === undefined ||
      (channel.frontendState === String(XenbusState.Initialising) &&
        (await readOr(env.xs, `${fe}/port`)) === undefined);
    if (!neverConnected) {
      const closed = await waitFor(
        env,
        `${fe}/state`,
        (v) => v === String(XenbusState.Closed) || v === undefined,
        request.timeoutMs,
      );
      if (!closed.ok) {
        throw new HostTimeoutError(
          `the guest of ${where} did not close channel ${channel.name ?? ''} (devid ${devid}) within ${request.timeoutMs / 1000} s (frontend state ${describeState(closed.value)}). ` +
            'The channel is left Closing but present: removing it under a guest that did not let go can corrupt QEMU and hang the guest kernel. ' +
            `Run xen-channel host detach ${domain.domid} --devid ${devid} again once the guest answers, or destroy the domain.`,
        );
      }
    }
    await env.xs.transaction(async (tx) => {
      await tx.rm(fe).catch(ignoreMissing);
      await tx.rm(be).catch(ignoreMissing);
      await tx.rm(libxlPath(domain.domid, devid)).catch(ignoreMissing);
    });
    const chardevs = chardevsOf(channel.output, devid);
    if (chardevs.length) await removeChardevs(env, domain, chardevs);
    env.note(`detached ${channel.name ?? 'console'} (devid ${devid}) from ${where}`);
    return channel;
  });
}

async function removeChardevs(env: HostEnv, domain: Domain, ids: readonly string[]): Promise<void> {
  const qmp = await env.qmp(domain.domid);
  try {
    const present = await chardevLabels(qmp);
    for (const id of ids) if (present.has(id)) await removeChardev(env, qmp, id);
  } finally {
    qmp.close();
  }
}

/**
 * chardev-remove, retried for a few seconds while QEMU still calls the device busy: QEMU lets
 * go of it when it handles the removal of the console's xenstore directories, which it sees
 * through its own watch, shortly after our transaction.
 */
async function removeChardev(env: HostEnv, qmp: QmpClient, id: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await qmp.execute('chardev-remove', { id });
      return;
    } catch (error) {
      if (!(error instanceof QmpCommandError && /busy/i.test(error.desc)) || attempt >= 25) throw error;
      await env.clock.sleep(200);
    }
  }
}
