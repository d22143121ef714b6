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
