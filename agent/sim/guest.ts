/*
 * A simulated Xen guest for tests and the demo: the in-memory xenstored with a guest home
 * laid out as libxl does it, a dom0 "toolstack" that plugs and unplugs channels with libxl's
 * nodes and the graceful Closing handshake, a dom0 "backend" that connects consoles like
 * QEMU, and a guest "kernel" that follows Linux hvc_xen: each channel tty is a pty whose
 * slave appears as <dev>/hvcN and whose master is bridged by socat to a dom0-side Unix
 * socket per channel. Layer: simulator (I/O: temporary trees, socat processes).
 * Kernel rules, with the source they mirror:
 *  - a frontend at Initialising with its last node-name character '0' never probes
 *    (hvc_xen.c xencons_probe(): devid 0 → -ENODEV; state stays 1);
 *  - probe allocates the lowest free hvc index of 8, or the index of a live console with the
 *    same last digit (hvc_console.c hvc_alloc(): vtermno match first, then the first free
 *    slot; that shared index gives the newcomer no usable tty), writes ring-ref and port in
 *    one transaction, then switches to Initialised (xencons_connect_backend());
 *  - backend Connected → frontend Connected; backend Closing/Closed → the tty is hung up and
 *    its slot freed, frontend Closed (xencons_backend_changed(), hvc_remove());
 *  - a console the kernel never probed (devid ending in 0, or a broken kernel) ignores its
 *    backend: xenbus_dev_probe() watches the other end only after a successful probe, so
 *    Closing leaves it at Initialising and the graceful unplug cannot finish (measured on
 *    Xen 4.17 with Linux 6.1: devid 10 stayed at 1 with its backend at 5);
 *  - only xen-bus uevents (add, bind, remove of console-N) mark a channel coming or going;
 *    unbacked /dev/hvcN give ENODEV (here: no node; see probeTty in simEnv()).
 * Known difference: when a dom0 client disconnects, its socat process reads the tty for up
 * to 50 ms more, so bytes the guest writes in that moment are lost (QEMU keeps them in the
 * ring until the next client). Tests reconnecting to a channel wait that long.
 * close() stops every process and connection it started.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { lstat, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Clock, systemClock } from '../clock.js';
import type { Env, Logger, Roots, TtyProbe } from '../effects/env.js';
import { probeTty } from '../effects/node-env.js';
import { XenstoreClient } from '../xenstore/client.js';
import type { Permission } from '../xenstore/perms.js';
import type { Transport } from '../xenstore/transport.js';
import { XenstoredSim } from './xenstored/server.js';

export interface SimulatedGuestOptions {
  /** An empty directory that becomes the guest's dev, sys, run and proc roots. */
  readonly root: string;
  readonly domid?: number;
  /** The guest has a primary PV console holding hvc0 (PV guests do). Default true. */
  readonly primary?: boolean;
  readonly kernelRelease?: string;
  readonly clock?: Clock;
  /**
   * A kernel that cannot probe secondary consoles (Linux 5.16 up to the Nov 2023 fix "hvc/xen:
   * fix event channel handling for secondary consoles": "probe of console-N failed with error -2").
   */
  readonly brokenKernel?: boolean;
}

export interface Uevent {
  readonly action: 'add' | 'bind' | 'remove';
  readonly devpath: string;
  readonly devid: string;
}

interface LiveTty {
  readonly slot: number;
  readonly bridge: ChildProcess | undefined;
}

const HVC_SLOTS = 8;
const GUEST_READONLY = (domid: number): Permission[] => [
  { domid: 0, access: 'none' },
  { domid, access: 'read' },
];

export class SimulatedGuest extends EventEmitter {
  readonly xenstored = new XenstoredSim();
  readonly roots: Roots;
  readonly domid: number;
  readonly primary: boolean;
  private readonly brokenKernel: boolean;
  private readonly clock: Clock;
  private readonly ttys = new Map<string, LiveTty>();
  private readonly slots: (string | null)[] = Array.from({ length: HVC_SLOTS }, () => null);
  private kernel: XenstoreClient | undefined;
  private dom0: XenstoreClient | undefined;
  private scanning: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(options: SimulatedGuestOptions) {
    super();
    this.domid = options.domid ?? 5;
    this.primary = options.primary ?? true;
    this.brokenKernel = options.brokenKernel ?? false;
    this.clock = options.clock ?? systemClock;
    this.roots = {
      dev: join(options.root, 'dev'),
      sys: join(options.root, 'sys'),
      run: join(options.root, 'run'),
      proc: join(options.root, 'proc'),
    };
  }

  /** Builds the trees and xenstore, then starts the guest kernel and the dom0 backend. */
  static async start(options: SimulatedGuestOptions): Promise<SimulatedGuest> {
    const guest = new SimulatedGuest(options);
    await guest.boot(options.kernelRelease ?? '6.1.0-sim');
    return guest;
  }

  private get home(): string {
    return `/local/domain/${this.domid}`;
  }

  private async boot(kernelRelease: string): Promise<void> {
    const { dev, sys, run, proc } = this.roots;
    await Promise.all([
      mkdir(dev, { recursive: true }),
      mkdir(join(sys, 'bus', 'xen', 'devices'), { recursive: true }),
      mkdir(run, { recursive: true }),
      mkdir(join(proc, 'sys', 'kernel'), { recursive: true }),
      mkdir(join(run, 'dom0'), { recursive: true }),
    ]);
    await writeFile(join(proc, 'sys', 'kernel', 'osrelease'), `${kernelRelease}\n`);
    for (let i = 0; i < HVC_SLOTS; i++) await mkdir(join(sys, 'class', 'tty', `hvc${i}`), { recursive: true });
    // The guest's home as libxl creates it (libxl_create.c: roperm for the home, rwperm for device/ and data/).
    this.xenstored.write(this.home, '', GUEST_READONLY(this.domid));
    this.xenstored.write(`${this.home}/domid`, String(this.domid), GUEST_READONLY(this.domid));
    this.xenstored.write(`${this.home}/device`, '', [{ domid: this.domid, access: 'none' }]);
    this.xenstored.write(`${this.home}/data`, '', [{ domid: this.domid, access: 'none' }]);
    if (this.primary) {
      this.xenstored.write(`${this.home}/console/port`, '2', GUEST_READONLY(this.domid));
      this.xenstored.write(`${this.home}/console/ring-ref`, '1044476', GUEST_READONLY(this.domid));
      this.slots[0] = 'primary';
    }
    // Other processes (xen-channel --root <root> ...) reach this guest's xenstore through a
    // socket where the real guest has its xenbus device.
    await mkdir(join(dev, 'xen'), { recursive: true });
    await this.xenstored.listen(join(dev, 'xen', 'xenbus'), { domid: this.domid, xenbusDevice: true });
    this.kernel = await XenstoreClient.connect({ transport: this.transport() });
    this.dom0 = await XenstoreClient.connect({ transport: this.xenstored.transport({ domid: 0 }) });
    const frontends = await this.kernel.watch('device');
    const backends = await this.dom0.watch(`/local/domain/0/backend/console/${this.domid}`);
    for (const watch of [frontends, backends]) {
      void (async () => {
        for await (const _ of watch) this.scheduleScan();
      })().catch((err) => this.emit('error', err));
    }
  }

  /** The guest's own xenstore connection (relative paths allowed), as the xenbus device gives it. */
  transport(): Transport {
    return this.xenstored.transport({ domid: this.domid, relativePaths: true, xenbusDevice: true });
  }

  /** The dom0-side socket of the channel with this devid. */
  socketPath(devid: number): string {
    return join(this.roots.run, 'dom0', `channel-${devid}.sock`);
  }

  /** hvc index → devid, for the slots the kernel holds (primary excluded). */
  slotTable(): Map<number, number> {
    const table = new Map<number, number>();
    this.slots.forEach((owner, slot) => {
      if (owner !== null && owner !== 'primary') table.set(slot, Number(owner));
    });
    return table;
  }

  /**
   * dom0: adds a channel the way libxl writes it (one transaction, guest-owned frontend with
   * read-only name/type/output, dom0-owned backend) and waits until the guest has probed it.
   */
  async plug(devid: number | string, name: string | Buffer, options: { waitForState?: number } = {}): Promise<void> {
    const dom0 = this.requireDom0();
    const d = this.domid;
    const front = `${this.home}/device/console/${devid}`;
    const back = `/local/domain/0/backend/console/${d}/${devid}`;
    const guestOwned: Permission[] = [
      { domid: d, access: 'none' },
      { domid: 0, access: 'read' },
    ];
    await dom0.transaction(async (tx) => {
      await tx.write(front, '');
      await tx.setPerms(front, guestOwned);
      for (const [key, value] of [
        ['backend', back],
        ['backend-id', '0'],
        ['state', '1'],
        ['protocol', 'vt100'],
      ] as const) {
        await tx.write(`${front}/${key}`, value);
        await tx.setPerms(`${front}/${key}`, guestOwned);
      }
      for (const [key, value] of [
        ['name', name],
        ['limit', '1048576'],
        ['type', 'ioemu'],
        ['output', `chardev:ch${devid}`],
        ['tty', ''],
      ] as const) {
        await tx.write(`${front}/${key}`, value);
        await tx.setPerms(`${front}/${key}`, GUEST_READONLY(d));
      }
      await tx.write(back, '');
      await tx.setPerms(back, GUEST_READONLY(d));
      for (const [key, value] of [
        ['frontend', front],
        ['frontend-id', String(d)],
        ['online', '1'],
        ['state', '1'],
        ['protocol', 'vt100'],
        ['name', name],
        ['connection', 'socket'],
        ['path', this.socketPath(Number(devid))],
      ] as const) {
        await tx.write(`${back}/${key}`, value);
      }
    });
    await this.waitForFrontend(String(devid), options.waitForState ?? 4);
  }

  /**
   * dom0: the graceful unplug (backend online=0 and Closing, wait for Closed, remove both).
   * @throws Error when the frontend never reaches Closed: a console the guest kernel never
   * probed does not answer Closing (the real harness's unplug fails the same way).
   */
  async unplug(devid: number | string): Promise<void> {
    const dom0 = this.requireDom0();
    const back = `/local/domain/0/backend/console/${this.domid}/${devid}`;
    await dom0.transaction(async (tx) => {
      await tx.write(`${back}/online`, '0');
      await tx.write(`${back}/state`, '5');
    });
    await this.waitForFrontend(String(devid), 6);
    await dom0.transaction(async (tx) => {
      await tx.rm(`${this.home}/device/console/${devid}`);
      await tx.rm(back);
    });
    await this.scheduleScan();
  }

  private requireDom0(): XenstoreClient {
    if (!this.dom0 || this.closed) throw new Error('the simulated guest is not running');
    return this.dom0;
  }

  private async waitForFrontend(key: string, state: number): Promise<void> {
    for (let i = 0; i < 500; i++) {
      await this.scheduleScan();
      const value = this.xenstored.read(`${this.home}/device/console/${key}/state`)?.toString();
      if (Number(value) === state || (state === 4 && this.isStuck(key))) return;
      await this.clock.sleep(2);
    }
    throw new Error(`simulated channel ${key} did not reach state ${state}`);
  }

  /** A console the kernel will never probe (devid ending in 0) or that has no tty of its own. */
  private isStuck(key: string): boolean {
    return this.brokenKernel || key.endsWith('0') || this.ttys.get(key)?.bridge === undefined;
  }

  private scheduleScan(): Promise<void> {
    this.scanning = this.scanning
      .then(() => this.scan())
      .catch((err) => {
        if (!this.closed) this.emit('error', err);
      });
    return this.scanning;
  }

  /** One pass of the guest kernel and the dom0 backend over every console. */
  private async scan(): Promise<void> {
    if (this.closed) return;
    const kernel = this.kernel;
    const dom0 = this.dom0;
    if (!kernel || !dom0) return;
    const keys = await kernel.directory('device/console').catch(() => [] as string[]);
    for (const key of keys) {
      const front = `device/console/${key}`;
      const state = Number(this.xenstored.read(`${this.home}/${front}/state`)?.toString());
      const backPath = this.xenstored.read(`${this.home}/${front}/backend`)?.toString();
      const backState = backPath ? Number(this.xenstored.read(`${backPath}/state`)?.toString()) : Number.NaN;
      const live = this.ttys.get(key);
      if (state === 1 && backPath && backState === 1) {
        await dom0.write(`${backPath}/state`, '2'); // the backend waits for the frontend (InitWait)
      } else if (state === 1 && !live && backPath && !key.endsWith('0') && backState < 5 && !this.brokenKernel) {
        await this.probe(kernel, key);
      } else if (state === 3 && backPath && backState < 4) {
        await dom0.write(`${backPath}/state`, '4'); // the backend (QEMU) connects
      } else if (state === 3 && backState === 4) {
        await kernel.write(`${front}/state`, '4');
      } else if ((backState === 5 || backState === 6) && state !== 6 && live) {
        await this.hangUp(key);
        await kernel.write(`${front}/state`, '6');
      }
    }
    for (const key of [...this.ttys.keys()]) {
      if (!keys.includes(key)) {
        await this.hangUp(key);
        await rm(join(this.roots.sys, 'bus', 'xen', 'devices', `console-${key}`), { recursive: true, force: true });
        this.emit('uevent', { action: 'remove', devpath: `/devices/console-${key}`, devid: key } satisfies Uevent);
      }
    }
  }

  private async probe(kernel: XenstoreClient, key: string): Promise<void> {
    const vterm = key.slice(-1);
    const sharing = this.slots.findIndex((owner) => owner !== null && owner !== 'primary' && owner.slice(-1) === vterm);
    const free = this.slots.indexOf(null);
    let tty: LiveTty;
    if (sharing !== -1 || free === -1) {
      tty = { slot: sharing !== -1 ? sharing : HVC_SLOTS + this.ttys.size, bridge: undefined };
    } else {
      this.slots[free] = key;
      tty = { slot: free, bridge: await this.startBridge(free, Number(key)) };
    }
    this.ttys.set(key, tty);
    const sysdir = join(this.roots.sys, 'bus', 'xen', 'devices', `console-${key}`);
    await mkdir(sysdir, { recursive: true });
    await writeFile(join(sysdir, 'nodename'), `device/console/${key}\n`);
    await writeFile(join(sysdir, 'devtype'), 'console\n');
    await kernel.transaction(async (tx) => {
      await tx.write(`device/console/${key}/ring-ref`, String(8 + tty.slot));
      await tx.write(`device/console/${key}/port`, String(20 + tty.slot));
    });
    await kernel.write(`device/console/${key}/state`, '3');
    this.emit('uevent', { action: 'add', devpath: `/devices/console-${key}`, devid: key } satisfies Uevent);
    this.emit('uevent', { action: 'bind', devpath: `/devices/console-${key}`, devid: key } satisfies Uevent);
  }

  private async startBridge(slot: number, devid: number): Promise<ChildProcess> {
    const link = join(this.roots.dev, `hvc${slot}`);
    const socket = this.socketPath(devid);
    await rm(socket, { force: true });
    // One dom0 client at a time, as QEMU's socket chardev serves it: with several forked
    // children (one lingering after its client left) two readers would split the tty's
    // output. The link is made here, not with socat's link= option: a forked child removes
    // that link when its client leaves, although the pty lives on in the parent.
    const bridge = spawn('socat', ['-d', '-d', '-t', '0.05', 'PTY', `UNIX-LISTEN:${socket},fork,max-children=1`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const ptyPath = new Promise<string>((resolve, reject) => {
      let text = '';
      bridge.stderr?.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        const m = /PTY is (\/dev\/pts\/\d+)/.exec(text);
        if (m?.[1]) resolve(m[1]);
      });
      bridge.once('error', (err) =>
        reject(new Error(`the simulator needs socat to make channel ttys (apt-get install socat): ${err.message}`)),
      );
      bridge.once('exit', (code) => reject(new Error(`socat exited (${code}) before making a pty: ${text.trim()}`)));
    });
    const pty = await ptyPath;
    await rm(link, { force: true });
    await symlink(pty, link);
    for (let i = 0; i < 1000 && !(await lstat(socket).catch(() => null)); i++) await this.clock.sleep(2);
    return bridge;
  }

  private async hangUp(key: string): Promise<void> {
    const tty = this.ttys.get(key);
    if (!tty) return;
    this.ttys.delete(key);
    if (tty.bridge) {
      if (this.slots[tty.slot] === key) this.slots[tty.slot] = null;
      await stopProcess(tty.bridge);
      await rm(join(this.roots.dev, `hvc${tty.slot}`), { force: true });
    }
  }

  /** Stops the kernel, the backend, every channel bridge and the xenstored. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.scanning;
    await Promise.all([this.kernel?.close(), this.dom0?.close()]);
    await Promise.all([...this.ttys.values()].map((t) => (t.bridge ? stopProcess(t.bridge) : undefined)));
    this.ttys.clear();
    await this.xenstored.close();
  }
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/**
 * A tty probe for the simulated dev tree: a slot with no node behind it is an empty hvc, and
 * so is a node whose pty is gone or hung up (a channel being unplugged: socat is stopping),
 * as an hvc gives ENODEV once its console is removed.
 */
export async function probeSimulatedTty(path: string): Promise<TtyProbe> {
  const probe = await probeTty(path);
  return probe === 'missing' ? 'empty' : probe;
}

/** An Env for the agent running inside `guest` (direct links: the simulator has no udev). */
export function simEnv(guest: SimulatedGuest, overrides: Partial<Env> & { log: Logger }): Env {
  return {
    roots: guest.roots,
    clock: systemClock,
    exec: {
      run: () => Promise.reject(Object.assign(new Error('no programs in the simulated guest'), { code: 'ENOENT' })),
    },
    xenstore: guest.transport(),
    probeTty: probeSimulatedTty,
    linkMode: 'direct',
    linkDirs: ['vport', 'xen-channel', 'virtio-ports'],
    ...overrides,
  };
}
