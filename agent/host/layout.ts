/*
 * The xenstore layout of a channel as libxl writes it at domain creation (libxl_console.c,
 * libxl__device_console_add + libxl__device_generic_add), so that a channel attached at run
 * time is indistinguishable from one in xl.cfg: the frontend and backend directories, their
 * permissions, the /libxl/<domid> bookkeeping that `xl channel-list` and `xl destroy` read,
 * and which devids may be used. Layer: pure (no I/O, no node: imports).
 * Checked against `xenstore-ls -fp` after `xl create` with channel=[...] (Xen 4.17, Debian 12).
 */
import type { Permission } from '../xenstore/perms.js';

/** The guest kernel reads only the last digit of the devid: 1..9 are the usable ones. */
export const DEVID_MIN = 1;
export const DEVID_MAX = 9;

/** What libxl writes for every console (LIBXL_XENCONSOLE_LIMIT, LIBXL_XENCONSOLE_PROTOCOL). */
export const CONSOLE_LIMIT = '1048576';
export const CONSOLE_PROTOCOL = 'vt100';

/** xenbus states (xen/include/public/io/xenbus.h). */
export const XenbusState = {
  Unknown: 0,
  Initialising: 1,
  InitWait: 2,
  Initialised: 3,
  Connected: 4,
  Closing: 5,
  Closed: 6,
  Reconfiguring: 7,
  Reconfigured: 8,
} as const;

const stateNames = Object.fromEntries(Object.entries(XenbusState).map(([name, n]) => [String(n), name]));

/** "4 (Connected)" for "4"; the raw text for anything else; "-" when absent. */
export function describeState(raw: string | undefined): string {
  if (raw === undefined) return '-';
  const name = stateNames[raw];
  return name === undefined ? raw : `${raw} (${name})`;
}

/** How QEMU connects the channel in dom0. */
export type Connection =
  | { readonly kind: 'socket'; readonly path: string; readonly mode: 'listen' | 'connect' }
  | { readonly kind: 'pty' };

export interface ChannelSpec {
  readonly domid: number;
  readonly devid: number;
  readonly name: string;
  readonly connection: Connection;
  /** The QEMU character device the backend proxies to ("output" is chardev:<id>). */
  readonly chardev: string;
  /** The pty QEMU opened, for a pty connection. */
  readonly tty?: string;
}

/** One node to write: absolute path, value and, when it differs from its parent's, its permissions. */
export interface NodeWrite {
  readonly path: string;
  readonly value: string;
  readonly perms: readonly Permission[];
}

export const frontendPath = (domid: number, devid: number): string => `/local/domain/${domid}/device/console/${devid}`;
export const frontendDir = (domid: number): string => `/local/domain/${domid}/device/console`;
export const backendPath = (domid: number, devid: number, backendDomid = 0): string =>
  `/local/domain/${backendDomid}/backend/console/${domid}/${devid}`;
export const backendDir = (domid: number, backendDomid = 0): string =>
  `/local/domain/${backendDomid}/backend/console/${domid}`;
export const libxlPath = (domid: number, devid: number): string => `/libxl/${domid}/device/console/${devid}`;
export const libxlDir = (domid: number): string => `/libxl/${domid}/device/console`;

/** The chardev id this package gives the channel at `devid` (libxl's own are libxl-channel<devid>). */
export const chardevId = (devid: number): string => `xen-channels-${devid}`;

/**
 * Every node of the channel, in the order they are written: frontend, backend, bookkeeping.
 * Permissions are libxl's: the frontend directory and the keys the guest kernel writes are
 * owned by the guest (dom0 may read); name, limit, type, output and tty are owned by dom0 and
 * read-only for the guest; the backend is owned by dom0, read-only for the guest; the
 * /libxl bookkeeping is dom0's alone. Only dom0 backends are supported (backend-id 0).
 */
export function channelNodes(spec: ChannelSpec): NodeWrite[] {
  const { domid, devid, name, connection } = spec;
  const fe = frontendPath(domid, devid);
  const be = backendPath(domid, devid);
  const guestOwned: Permission[] = [
    { domid, access: 'none' },
    { domid: 0, access: 'read' },
  ];
  const guestReadOnly: Permission[] = [
    { domid: 0, access: 'none' },
    { domid, access: 'read' },
  ];
  const dom0Only: Permission[] = [{ domid: 0, access: 'none' }];
  const backendKeys: Array<[string, string]> = [
    ['frontend', fe],
    ['frontend-id', String(domid)],
    ['online', '1'],
    ['state', String(XenbusState.Initialising)],
    ['protocol', CONSOLE_PROTOCOL],
    ['name', name],
    ['connection', connection.kind],
  ];
  if (connection.kind === 'socket') backendKeys.push(['path', connection.path]);

  const nodes: NodeWrite[] = [
    { path: fe, value: '', perms: guestOwned },
    { path: `${fe}/backend`, value: be, perms: guestOwned },
    { path: `${fe}/backend-id`, value: '0', perms: guestOwned },
    { path: `${fe}/state`, value: String(XenbusState.Initialising), perms: guestOwned },
    { path: `${fe}/protocol`, value: CONSOLE_PROTOCOL, perms: guestOwned },
    { path: `${fe}/name`, value: name, perms: guestReadOnly },
    { path: `${fe}/limit`, value: CONSOLE_LIMIT, perms: guestReadOnly },
    { path: `${fe}/type`, value: 'ioemu', perms: guestReadOnly },
    { path: `${fe}/output`, value: `chardev:${spec.chardev}`, perms: guestReadOnly },
    { path: `${fe}/tty`, value: spec.tty ?? '', perms: guestReadOnly },
    { path: be, value: '', perms: guestReadOnly },
    ...backendKeys.map(([key, value]) => ({ path: `${be}/${key}`, value, perms: guestReadOnly })),
  ];
  const bookkeeping = libxlPath(domid, devid);
  nodes.push({ path: bookkeeping, value: '', perms: dom0Only });
  // libxl's bookkeeping: the backend's keys plus "backend".
  const bookkeepingKeys: Array<[string, string]> = [['backend', be], ...backendKeys];
  for (const [key, value] of bookkeepingKeys) nodes.push({ path: `${bookkeeping}/${key}`, value, perms: dom0Only });
  return nodes;
}

/**
 * The devid to use: `wanted` if given and free, else the lowest free one in 1..9.
 * `used` are the devids present in the frontend or backend directory.
 * Returns an error text (for the operator) instead of a devid when none fits.
 */
export function chooseDevid(used: ReadonlySet<number>, wanted?: number): { devid: number } | { error: string } {
  if (wanted !== undefined) {
    if (!Number.isInteger(wanted) || wanted < DEVID_MIN || wanted > DEVID_MAX) {
      return {
        error: `devid ${wanted} cannot work: the guest kernel reads only the last digit of the devid, so use ${DEVID_MIN} to ${DEVID_MAX}`,
      };
    }
    if (used.has(wanted)) return { error: `devid ${wanted} is in use; leave --devid out to take a free one` };
    return { devid: wanted };
  }
  for (let devid = DEVID_MIN; devid <= DEVID_MAX; devid++) if (!used.has(devid)) return { devid };
  return {
    error: `every usable devid (${DEVID_MIN} to ${DEVID_MAX}) is taken: the guest kernel cannot use others; detach a channel first`,
  };
}

/** The devids (as numbers) among directory entries; other names are ignored. */
export function devidsOf(entries: readonly string[]): number[] {
  return entries.filter((e) => /^\d+$/.test(e)).map(Number);
}

/**
 * The QEMU character devices that serve the channel whose frontend says `output`, so that
 * they can be removed after the channel: "chardev:<id>" names it; "pty" means QEMU opened
 * its own, labelled xencons<devid>, and libxl also created libxl-channel<devid> for it.
 */
export function chardevsOf(output: string | undefined, devid: number): string[] {
  if (output === undefined) return [];
  if (output.startsWith('chardev:')) return [output.slice('chardev:'.length)];
  if (output === 'pty') return [`xencons${devid}`, `libxl-channel${devid}`];
  return [];
}

/** The QMP chardev-add backend for a connection (QEMU qapi/char.json ChardevBackend). */
export function chardevBackend(connection: Connection): Record<string, unknown> {
  if (connection.kind === 'pty') return { type: 'pty', data: {} };
  return {
    type: 'socket',
    data: {
      addr: { type: 'unix', data: { path: connection.path } },
      server: connection.mode === 'listen',
      ...(connection.mode === 'listen' ? { wait: false } : {}),
    },
  };
}
