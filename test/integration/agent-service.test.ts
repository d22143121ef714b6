import { execFileSync } from 'node:child_process';
import { open } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import type { ReconcileResult } from '../../agent/reconcile.js';
import { reconcile } from '../../agent/reconcile.js';
import { Agent } from '../../agent/service/agent.js';
import { XenstoreClient } from '../../agent/xenstore/client.js';
import { linkTarget, recordingEnv, startGuest } from '../helpers/sim-guest.js';

/** Resolves with the first reconcile result (from now on) that satisfies `predicate`. */
function reconciledWhere(
  agent: Agent,
  what: string,
  predicate: (r: ReconcileResult) => boolean,
): Promise<ReconcileResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reconcile where ${what} within 10 s`)), 10_000);
    agent.on('reconciled', (result) => {
      if (predicate(result)) {
        clearTimeout(timer);
        resolve(result);
      }
    });
  });
}

const linked = (r: ReconcileResult, name: string): boolean =>
  r.channels.some((c) => c.name === name && c.links.length > 0);

t.test('the agent follows hotplug and unplug through its xenstore watch', async (t) => {
  const guest = await startGuest(t);
  await guest.plug(1, 'org.qemu.guest_agent.0');
  const env = recordingEnv(guest);
  const started = Agent.start(env);
  const agent = await started;
  t.teardown(() => agent.stop());
  await reconciledWhere(agent, 'the boot channel is linked', (r) => linked(r, 'org.qemu.guest_agent.0'));
  t.equal(await linkTarget(guest, 'virtio-ports/org.qemu.guest_agent.0'), '../hvc1');

  const hot = reconciledWhere(agent, 'org.example.hot is linked', (r) => linked(r, 'org.example.hot'));
  await guest.plug(2, 'org.example.hot');
  await hot;
  t.equal(await linkTarget(guest, 'vport/org.example.hot'), '../hvc2', 'hot-plugged channel linked');

  const gone = reconciledWhere(agent, 'devid 1 is gone', (r) => !r.channels.some((c) => c.key === '1'));
  await guest.unplug(1);
  await gone;
  t.equal(await linkTarget(guest, 'vport/org.qemu.guest_agent.0'), undefined, 'unplugged channel unlinked');
  t.equal(await linkTarget(guest, 'vport/org.example.hot'), '../hvc2', 'the other one is untouched');
  t.match(env.lines.join('\n'), /info: watching device\/console through simulated xenstored/);
});

t.test('udev-event runs and the service running at the same time never leave a wrong link', async (t) => {
  const guest = await startGuest(t);
  const env = recordingEnv(guest);
  const agent = await Agent.start(env);
  t.teardown(() => agent.stop());
  const oneShot = async (): Promise<void> => {
    const client = await XenstoreClient.connect({ transport: env.xenstore });
    try {
      await reconcile(env, client);
    } finally {
      await client.close();
    }
  };
  for (let round = 1; round <= 5; round++) {
    const devid = (round % 3) + 1;
    const name = `org.example.round${round}`;
    const plugged = guest.plug(devid, name);
    await Promise.all([plugged, oneShot(), oneShot()]);
    await oneShot();
    const slot = [...guest.slotTable()].find(([, d]) => d === devid)?.[0];
    t.equal(await linkTarget(guest, `vport/${name}`), `../hvc${slot}`, `round ${round}: ${name} -> hvc${slot}`);
    await Promise.all([guest.unplug(devid), oneShot()]);
    await oneShot();
    t.equal(await linkTarget(guest, `vport/${name}`), undefined, `round ${round}: unlinked after unplug`);
  }
});

t.test('the agent keeps each channel tty raw, so a plain open is binary-safe, and steals no byte', async (t) => {
  const guest = await startGuest(t);
  await guest.plug(1, 'org.example.plain');
  const env = recordingEnv(guest);
  const agent = await Agent.start(env);
  t.teardown(() => agent.stop());
  await reconciledWhere(agent, 'the channel is linked', (r) => linked(r, 'org.example.plain'));
  t.same(agent.rawHolder?.ttys, [join(guest.roots.dev, 'hvc1')]);
  const settings = execFileSync('stty', ['-F', join(guest.roots.dev, 'hvc1'), '-a']).toString();
  t.match(settings, /(^|[\s;])-opost([\s;]|$)/, 'raw while nobody but the agent has it open');
  t.match(settings, /(^|[\s;])-echo([\s;]|$)/);

  // dom0 sends before any application reads: the holder must not take the bytes.
  const dom0 = createConnection(guest.socketPath(1));
  await new Promise((resolve) => dom0.once('connect', resolve));
  const fromGuest: Buffer[] = [];
  dom0.on('data', (c: Buffer) => fromGuest.push(c));
  dom0.write('early\n');
  await new Promise((resolve) => setTimeout(resolve, 200));
  const app = await open(join(guest.roots.dev, 'vport', 'org.example.plain'), 'r+'); // no raw mode set
  const buffer = Buffer.alloc(64);
  const { bytesRead } = await app.read(buffer, 0, 64, null);
  t.equal(buffer.subarray(0, bytesRead).toString(), 'early\n', 'the early bytes wait for the application');
  await app.write('answer\n');
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(Buffer.concat(fromGuest).toString(), 'answer\n', 'no echo of "early", no \\r added');
  await app.close();
  dom0.destroy();

  const gone = reconciledWhere(agent, 'devid 1 is gone', (r) => r.channels.length === 0);
  await guest.unplug(1);
  await gone;
  t.same(agent.rawHolder?.ttys, [], 'the tty is released after unplug');
});

t.test('a problem the udev helper saw first is still logged by the service (docs review)', async (t) => {
  const guest = await startGuest(t);
  await guest.plug(1, 'bad name');
  const helperEnv = recordingEnv(guest);
  const client = await XenstoreClient.connect({ transport: helperEnv.xenstore });
  await reconcile(helperEnv, client);
  await client.close();
  t.match(helperEnv.lines.join('\n'), /warn: channel devid 1: name "bad name" rejected/);
  const serviceEnv = recordingEnv(guest);
  const agent = await Agent.start(serviceEnv);
  t.teardown(() => agent.stop());
  await reconciledWhere(agent, 'the first pass', () => true);
  t.match(serviceEnv.lines.join('\n'), /warn: channel devid 1: name "bad name" rejected/);
});
