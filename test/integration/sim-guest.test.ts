import t from 'tap';
import { startGuest } from '../helpers/sim-guest.js';

const frontState = (guest: Awaited<ReturnType<typeof startGuest>>, devid: number): string | undefined =>
  guest.xenstored.read(`/local/domain/${guest.domid}/device/console/${devid}/state`)?.toString();

t.test('SimulatedGuest follows what the real guest kernel did in the e2e harness', async (t) => {
  t.test('a console the kernel never probed ignores Closing, so it cannot be unplugged (issue 7)', async (t) => {
    const guest = await startGuest(t);
    await guest.plug(1, 'org.example.one');
    await guest.plug(10, 'org.example.ten', { waitForState: 1 });
    await t.rejects(guest.unplug(10), /simulated channel 10 did not reach state 6/);
    t.equal(frontState(guest, 10), '1', 'devid 10 stays Initialising with its backend Closing');
    t.equal(
      guest.xenstored.read(`/local/domain/0/backend/console/${guest.domid}/10/state`)?.toString(),
      '5',
      'the backend is Closing',
    );
    await guest.unplug(1);
    t.equal(frontState(guest, 1), undefined, 'a probed console still unplugs');
  });

  t.test('on a kernel that cannot probe secondary consoles, no console answers Closing', async (t) => {
    const guest = await startGuest(t, { brokenKernel: true });
    await guest.plug(1, 'org.example.one');
    await t.rejects(guest.unplug(1), /did not reach state 6/);
    t.equal(frontState(guest, 1), '1');
  });

  t.test('devid 13 beside a live devid 3 gets no tty of its own, and its unplug leaves hvc3 to devid 3', async (t) => {
    const guest = await startGuest(t);
    for (const d of [1, 2, 3]) await guest.plug(d, `org.example.${d}`);
    await guest.plug(13, 'org.example.thirteen');
    t.equal(frontState(guest, 13), '4', 'devid 13 reaches Connected');
    t.same(
      [...guest.slotTable()],
      [
        [1, 1],
        [2, 2],
        [3, 3],
      ],
    );
    await guest.unplug(13);
    t.same(
      [...guest.slotTable()],
      [
        [1, 1],
        [2, 2],
        [3, 3],
      ],
    );
  });
});
