import { basename, join } from 'node:path';
import t from 'tap';
import { reconcile } from '../../agent/reconcile.js';
import { RawHolder } from '../../agent/service/raw-holder.js';
import { XenstoreClient } from '../../agent/xenstore/client.js';
import { recordingEnv, startGuest } from '../helpers/sim-guest.js';

t.test('RawHolder: a tty that went away while it was being held is no warning (real Xen, unplug race)', async (t) => {
  const guest = await startGuest(t);
  const env = recordingEnv(guest);
  const holder = new RawHolder(env);
  t.teardown(() => holder.close());
  const report = {
    key: '2',
    devid: 2,
    name: 'gone',
    state: 'Connected',
    slot: 2,
    basis: 'observed' as const,
    links: ['vport/gone'],
    problems: [],
  };
  await holder.update([report]); // /dev/hvc2 does not exist (any more)
  t.same(holder.ttys, []);
  t.same(env.lines, [], 'nothing at warn level');
  await guest.plug(1, 'here');
  await holder.update([{ ...report, key: '1', devid: 1, name: 'here', slot: 1, links: ['vport/here'] }]);
  t.same(holder.ttys, [join(guest.roots.dev, 'hvc1')], 'a tty that is there is held');
});

t.test('RawHolder.release lets go of exactly the ttys in the given slots', async (t) => {
  const guest = await startGuest(t);
  const holder = new RawHolder(recordingEnv(guest));
  t.teardown(() => holder.close());
  await guest.plug(1, 'one');
  await guest.plug(2, 'two');
  const report = (devid: number) => ({
    key: String(devid),
    devid,
    name: `c${devid}`,
    state: 'Connected',
    slot: devid,
    basis: 'observed' as const,
    links: [`vport/c${devid}`],
    problems: [],
  });
  await holder.update([report(1), report(2)]);
  t.same(holder.ttys, [join(guest.roots.dev, 'hvc1'), join(guest.roots.dev, 'hvc2')]);
  await holder.release([2, 5]);
  t.same(holder.ttys, [join(guest.roots.dev, 'hvc1')], 'hvc2 released, hvc1 still held');
});

t.test(
  'a pass hands the slots it will open to releaseBeforeProbe before opening any (real Xen: reopening a held tty of a removed console corrupts the kernel)',
  async (t) => {
    const guest = await startGuest(t);
    await guest.plug(1, 'one');
    const order: string[] = [];
    const env = recordingEnv(guest);
    const probing = recordingEnv(guest, {
      probeTty: async (path) => {
        order.push(`open ${basename(path)}`);
        return env.probeTty(path);
      },
    });
    const client = await XenstoreClient.connect({ transport: probing.xenstore });
    t.teardown(() => client.close());
    await reconcile(probing, client, {
      releaseBeforeProbe: async (slots) => {
        order.push(`release ${slots.map((s) => `hvc${s}`).join(' ')}`);
      },
    });
    t.equal(
      order[0],
      'release hvc2 hvc3 hvc4 hvc5 hvc6 hvc7',
      'the free slots (hvc0: primary, hvc1: one) are released first',
    );
    t.same(
      order.slice(1),
      ['hvc2', 'hvc3', 'hvc4', 'hvc5', 'hvc6', 'hvc7'].map((s) => `open ${s}`),
      'then each is opened',
    );
  },
);

t.test(
  'a pass that cannot release holders (udev helper, status) never opens a vacated slot; the agent pass settles it',
  async (t) => {
    const guest = await startGuest(t);
    await guest.plug(1, 'one');
    await guest.plug(2, 'two');
    const opened: string[] = [];
    const env = recordingEnv(guest);
    const probing = recordingEnv(guest, {
      probeTty: async (path) => {
        opened.push(basename(path));
        return env.probeTty(path);
      },
    });
    const client = await XenstoreClient.connect({ transport: probing.xenstore });
    t.teardown(() => client.close());
    const release = async () => {};
    await reconcile(probing, client, { releaseBeforeProbe: release });
    await guest.unplug(2);
    opened.length = 0;
    const helper = await reconcile(probing, client, { fromUdev: true });
    t.same(helper.model.vacated, [2], 'hvc2 is vacated');
    t.notOk(opened.includes('hvc2'), `the helper's pass did not open hvc2 (opened ${opened.join(' ')})`);
    opened.length = 0;
    const agent = await reconcile(probing, client, { releaseBeforeProbe: release });
    t.ok(opened.includes('hvc2'), "the agent's pass opened it");
    t.equal(agent.model.vacated, undefined, 'and, answering ENODEV, it is settled');
  },
);
