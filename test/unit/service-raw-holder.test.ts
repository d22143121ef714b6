import { join } from 'node:path';
import t from 'tap';
import { RawHolder } from '../../agent/service/raw-holder.js';
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
