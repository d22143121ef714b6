/*
 * A dom0 world for the host commands' tests: the simulated xenstored with guest vm-a (domid 3,
 * one libxl-created channel at devid 1 served by chardev libxl-channel1) and vm-b (domid 5, no
 * QEMU), a scripted QEMU answering QMP over in-memory pairs, and a fake guest kernel that
 * follows the xenbus handshake from its own unprivileged connection. Test helper; everything
 * is closed through t.teardown.
 */
import type { Test } from 'tap';
import type { HostEnv } from '../../agent/host/channels.js';
import { HostError } from '../../agent/host/errors.js';
import { channelNodes } from '../../agent/host/layout.js';
import { QmpClient } from '../../agent/host/qmp.js';
import { createDuplexPair } from '../../agent/sim/duplex-pair.js';
import { XenstoredSim } from '../../agent/sim/xenstored/index.js';
import { XenstoreClient } from '../../agent/xenstore/client.js';
import { XenstoreError } from '../../agent/xenstore/errors.js';
import type { Permission } from '../../agent/xenstore/perms.js';
import { type ManualClock, manualClock } from './manual-clock.js';

export const GUEST = 3;
const perms = (...p: Array<[number, Permission['access']]>): Permission[] =>
  p.map(([domid, access]) => ({ domid, access }));

/** The per-domain QEMU as far as QMP goes: character devices by id. */
export class FakeQemu {
  readonly chardevs = new Map<string, unknown>();
  readonly log: string[] = [];
  /** How many chardev-remove requests still get "busy" (QEMU not done with the console yet). */
  busyRemovals = 0;
  nextPty = 5;

  session(): Promise<QmpClient> {
    const [client, server] = createDuplexPair();
    let buffer = '';
    server.setEncoding('utf8');
    const reply = (id: unknown, body: Record<string, unknown>): void => {
      server.write(`${JSON.stringify({ ...body, id })}\r\n`);
    };
    server.on('data', (chunk: string) => {
      buffer += chunk;
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const {
          execute,
          arguments: args,
          id,
        } = JSON.parse(buffer.slice(0, nl)) as {
          execute: string;
          arguments?: { id: string; backend: { type: string } };
          id: unknown;
        };
        buffer = buffer.slice(nl + 1);
        this.log.push(args ? `${execute} ${args.id}` : execute);
        if (execute === 'qmp_capabilities') reply(id, { return: {} });
        else if (execute === 'query-chardev')
          reply(id, { return: [...this.chardevs.keys()].map((label) => ({ label })) });
        else if (execute === 'chardev-add' && args) {
          if (this.chardevs.has(args.id)) {
            reply(id, { error: { class: 'GenericError', desc: `attempt to add duplicate property '${args.id}'` } });
          } else {
            this.chardevs.set(args.id, args.backend);
            reply(id, { return: args.backend.type === 'pty' ? { pty: `/dev/pts/${this.nextPty++}` } : {} });
          }
        } else if (execute === 'chardev-remove' && args) {
          if (this.busyRemovals > 0 && this.chardevs.has(args.id)) {
            this.busyRemovals--;
            reply(id, { error: { class: 'GenericError', desc: `Chardev '${args.id}' is busy` } });
          } else if (this.chardevs.delete(args.id)) reply(id, { return: {} });
          else reply(id, { error: { class: 'GenericError', desc: `Chardev '${args.id}' not found` } });
        }
      }
    });
    server.write('{"QMP": {"version": {}, "capabilities": []}}\r\n');
    return QmpClient.open(client, { clock: manualClock(), where: 'fake QMP' });
  }
}

/**
 * The guest kernel's side of the handshake, as the guest domain: a new console in state 1
 * gets a ring (ring-ref, port) and goes to 3, then 4 once the backend (QEMU, played here too)
 * is Connected; a backend in Closing makes it go to 6. `answer = false` plays a stuck guest.
 */
async function fakeGuestKernel(t: Test, sim: XenstoredSim, answer: { value: boolean }) {
  const guest = await XenstoreClient.connect({ transport: sim.transport({ domid: GUEST, relativePaths: false }) });
  const dom0 = await XenstoreClient.connect({ transport: sim.transport({ domid: 0 }) });
  const fe = `/local/domain/${GUEST}/device/console`;
  const seenBackendClosing: Array<{ devid: string; frontendPresent: boolean }> = [];
  // One device step, as the kernel does it: only while the directory is still there (a device
  // removed meanwhile is dropped; its nodes cannot be recreated by the guest anyway).
  const whilePresent = async (devid: string, fn: () => Promise<void>): Promise<void> => {
    try {
      if ((await guest.directory(fe)).includes(devid)) await fn();
    } catch (error) {
      if (!(error instanceof XenstoreError && (error.code === 'ENOENT' || error.code === 'EACCES'))) throw error;
    }
  };
  const react = async (): Promise<void> => {
    if (!answer.value) return;
    const devids = await guest.directory(fe).catch(() => [] as string[]);
    for (const devid of devids) {
      const state = await guest.read(`${fe}/${devid}/state`).catch(() => undefined);
      const be = await guest.read(`${fe}/${devid}/backend`).catch(() => undefined);
      if (!be || !state) continue;
      const beState = await guest.read(`${be}/state`).catch(() => undefined);
      if (state === '1' && beState === '1') {
        await whilePresent(devid, () =>
          guest.transaction(async (tx) => {
            await tx.write(`${fe}/${devid}/ring-ref`, '8');
            await tx.write(`${fe}/${devid}/port`, '15');
            await tx.write(`${fe}/${devid}/state`, '3');
          }),
        );
        await whilePresent(devid, () => dom0.write(`${be}/state`, '4')); // QEMU connects
        await whilePresent(devid, () => guest.write(`${fe}/${devid}/state`, '4'));
      } else if (beState === '5' && state !== '6') {
        seenBackendClosing.push({ devid, frontendPresent: true });
        await whilePresent(devid, () => guest.write(`${fe}/${devid}/state`, '6'));
      }
    }
  };
  // Events from both watches are handled one at a time, in arrival order.
  let queue = Promise.resolve();
  const watches = [await guest.watch(fe), await guest.watch(`/local/domain/0/backend/console/${GUEST}`)];
  const loops = watches.map(async (w) => {
    for await (const _ of w) {
      queue = queue.then(react);
      await queue;
    }
  });
  t.teardown(async () => {
    for (const w of watches) await w.close();
    await Promise.all(loops);
    await guest.close();
    await dom0.close();
  });
  return { guest, seenBackendClosing };
}

export interface World {
  sim: XenstoredSim;
  env: HostEnv & { notes: string[] };
  clock: ManualClock;
  qemu: FakeQemu;
  guest: XenstoreClient;
  answer: { value: boolean };
  seenBackendClosing: Array<{ devid: string; frontendPresent: boolean }>;
}

export async function hostWorld(t: Test): Promise<World> {
  const sim = new XenstoredSim();
  t.teardown(() => sim.close());
  sim.write('/local/domain/0/name', 'Domain-0');
  sim.write(`/local/domain/${GUEST}/name`, 'vm-a', perms([0, 'none'], [GUEST, 'read']));
  sim.write(`/local/domain/${GUEST}/device/console`, '', perms([0, 'none'], [GUEST, 'read']));
  sim.write('/local/domain/5/name', 'vm-b');
  sim.write('/local/domain/0/backend/console', '');
  // A channel libxl created at boot: devid 1, served by QEMU's libxl-channel1.
  for (const node of channelNodes({
    domid: GUEST,
    devid: 1,
    name: 'org.example.boot',
    connection: { kind: 'socket', path: '/run/boot.sock', mode: 'listen' },
    chardev: 'libxl-channel1',
  })) {
    sim.write(
      node.path,
      node.path.endsWith('/state') && !node.path.startsWith('/libxl') ? '4' : node.value,
      node.perms,
    );
  }
  const qemu = new FakeQemu();
  qemu.chardevs.set('libxl-channel1', { type: 'socket' });
  const xs = await XenstoreClient.connect({ transport: sim.transport({ domid: 0 }) });
  t.teardown(() => xs.close());
  const clock = manualClock();
  let lock: Promise<unknown> = Promise.resolve();
  const notes: string[] = [];
  const env: HostEnv & { notes: string[] } = {
    xs,
    clock,
    notes,
    qmp: (domid) =>
      domid === GUEST ? qemu.session() : Promise.reject(new HostError('ENODM', `domain ${domid} has no QEMU`)),
    socketInUse: async (path) => path === '/run/busy.sock',
    withDomainLock: <T>(_domid: number, fn: () => Promise<T>): Promise<T> => {
      const run = lock.then(fn, fn);
      lock = run.catch(() => {});
      return run;
    },
    note: (line) => notes.push(line),
  };
  const answer = { value: true };
  const { guest, seenBackendClosing } = await fakeGuestKernel(t, sim, answer);
  return { sim, env, clock, qemu, guest, answer, seenBackendClosing };
}
