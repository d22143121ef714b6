import t from 'tap';
import {
  advance,
  type ConsolePhase,
  crossCheck,
  emptyModel,
  freeSlots,
  parseModel,
  type SlotModel,
  settleVacated,
  slotOf,
} from '../../../agent/model/slots.js';

const live = (...devids: number[]): ConsolePhase[] => devids.map((devid) => ({ devid, phase: 'live' }));
const slots = (m: SlotModel): Record<number, number | null> => Object.fromEntries(m.live.map((a) => [a.devid, a.slot]));

t.test('the lab sequence (Linux 6.1 on Xen 4.17): lowest free slot, in event order', async (t) => {
  // Each step: the consoles live after the change, and the slots the real guest showed.
  const steps: Array<[string, number[], Record<number, number>]> = [
    ['boot with 1,2,3', [1, 2, 3], { 1: 1, 2: 2, 3: 3 }],
    ['unplug 2', [1, 3], { 1: 1, 3: 3 }],
    ['plug 4 -> hvc2', [1, 3, 4], { 1: 1, 3: 3, 4: 2 }],
    ['plug 5 -> hvc4', [1, 3, 4, 5], { 1: 1, 3: 3, 4: 2, 5: 4 }],
    ['unplug 4', [1, 3, 5], { 1: 1, 3: 3, 5: 4 }],
    ['plug 6 -> hvc2', [1, 3, 5, 6], { 1: 1, 3: 3, 5: 4, 6: 2 }],
  ];
  let model = emptyModel(true);
  for (const [i, [what, devids, expected]] of steps.entries()) {
    model = advance(model, live(...devids), i === 0 ? 'inferred' : 'observed');
    t.same(slots(model), expected, what);
  }
  t.same(
    model.live.map((a) => a.basis),
    ['inferred', 'inferred', 'observed', 'observed'],
    'boot assignments are inferred from directory order, later ones observed',
  );
  t.same(freeSlots(model), [5, 6, 7]);
});

t.test('a guest without a primary console gives console-1 hvc0', async (t) => {
  const model = advance(emptyModel(false), live(1), 'observed');
  t.same(slots(model), { 1: 0 });
  t.same(slotOf(model, 1), { slot: 0 });
});

t.test('consoles not yet probed or closed hold no slot', async (t) => {
  const model = advance(
    emptyModel(true),
    [
      { devid: 1, phase: 'waiting' },
      { devid: 2, phase: 'live' },
      { devid: 3, phase: 'closed' },
    ],
    'inferred',
  );
  t.same(slots(model), { 2: 1 });
  t.match(slotOf(model, 1), { problem: /not live/ });
});

t.test('eight channels beside the primary console: the eighth gets no tty', async (t) => {
  const model = advance(emptyModel(true), live(1, 2, 3, 4, 5, 6, 7, 8), 'inferred');
  t.same(slots(model), { 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: null });
  t.match(slotOf(model, 8), { problem: /no free hvc slot: the guest kernel has only \/dev\/hvc0..7/ });
  t.same(freeSlots(model), []);
});

t.test('several changes seen at once are inferred: frees first, then directory order', async (t) => {
  let model = advance(emptyModel(true), live(1, 2, 3), 'observed');
  model = advance(model, live(1, 3, 5, 4), 'observed'); // 2 gone, 5 and 4 new in one look
  t.same(slots(model), { 1: 1, 3: 3, 5: 2, 4: 4 });
  t.same(
    model.live.filter((a) => a.devid >= 4).map((a) => a.basis),
    ['inferred', 'inferred'],
  );
});

t.test('a restart in the middle of the sequence continues from the saved model', async (t) => {
  let model = advance(emptyModel(true), live(1, 2, 3), 'inferred');
  model = advance(model, live(1, 3), 'observed');
  const saved = JSON.parse(JSON.stringify(model));
  const restored = parseModel(saved);
  t.same(restored, model, 'the saved model reads back');
  if (!restored) return;
  const next = advance(restored, live(1, 3, 4), 'observed');
  t.same(slots(next), { 1: 1, 3: 3, 4: 2 }, 'plug 4 after the restart still gets hvc2');
});

t.test('crossCheck: a slot thought free that has a console makes inferred assignments uncertain', async (t) => {
  // Boot reconstruction when 2 was unplugged and 4 plugged before xen-channels first ran:
  // the truth is 1->hvc1, 3->hvc3, 4->hvc2; directory order guesses 3->hvc2, 4->hvc3.
  const model = advance(emptyModel(true), live(1, 3, 4), 'inferred');
  t.same(crossCheck(model, []), model, 'nothing changes when every free slot was empty');
  const checked = crossCheck(model, [4]);
  t.same(
    checked.live.map((a) => a.basis),
    ['uncertain', 'uncertain', 'uncertain'],
  );
  t.match(slotOf(checked, 4), { problem: /cannot be told for sure/ });
  t.same(
    crossCheck(advance(emptyModel(true), live(1, 2, 3), 'inferred'), [4], 1),
    advance(emptyModel(true), live(1, 2, 3), 'inferred'),
    'a console still waiting for its probe may already hold the lowest free slot (hvc_alloc comes first)',
  );
  t.same(
    crossCheck(advance(emptyModel(true), live(1, 2, 3), 'inferred'), [4, 5], 2).live.map((a) => a.basis),
    ['inferred', 'inferred', 'inferred'],
    'two waiting consoles may hold the two lowest free slots',
  );
  t.same(
    crossCheck(advance(emptyModel(true), live(1, 2, 3), 'inferred'), [5], 1).live.map((a) => a.basis),
    ['uncertain', 'uncertain', 'uncertain'],
    'but not a slot above the lowest free one',
  );
  t.same(
    crossCheck(advance(emptyModel(true), live(1, 2, 3), 'inferred'), [4, 5], 1).live.map((a) => a.basis),
    ['uncertain', 'uncertain', 'uncertain'],
    'nor more slots than consoles waiting',
  );
  const mixed = crossCheck(advance(advance(emptyModel(true), live(1), 'observed'), live(1, 2, 3), 'observed'), [6]);
  t.same(
    mixed.live.map((a) => [a.devid, a.basis]),
    [
      [1, 'observed'],
      [2, 'uncertain'],
      [3, 'uncertain'],
    ],
    'observed assignments stay',
  );
});

t.test('parseModel refuses anything that is not a model', async (t) => {
  const bad: unknown[] = [
    null,
    'x',
    { primary: 'yes', live: [] },
    { primary: true, live: {} },
    { primary: true, live: [{ devid: 10, slot: 1, basis: 'observed' }] },
    { primary: true, live: [{ devid: 1, slot: 8, basis: 'observed' }] },
    { primary: true, live: [{ devid: 1, slot: 1, basis: 'guess' }] },
    { primary: true, live: [null] },
  ];
  for (const data of bad) t.equal(parseModel(data), undefined, JSON.stringify(data));
  t.same(parseModel({ primary: false, live: [{ devid: 2, slot: null, basis: 'observed' }] }), {
    primary: false,
    live: [{ devid: 2, slot: null, basis: 'observed' }],
  });
});

t.test('a slot vacated by an unplug may still answer until its last opener closes it', async (t) => {
  const boot = advance(emptyModel(true), live(1, 2, 3), 'inferred');
  const unplugged = advance(boot, live(1, 3), 'observed');
  t.same(unplugged.vacated, [2], 'unplugging devid 2 vacates hvc2');
  t.equal(crossCheck(unplugged, [2]), unplugged, 'hvc2 still openable is no evidence against the model');
  t.same(
    crossCheck(unplugged, [2, 5]).live.map((a) => a.basis),
    ['uncertain', 'uncertain'],
    'another occupied slot still is',
  );
  t.same(settleVacated(unplugged, [2], [2]).vacated, [2], 'kept while it still answers');
  t.equal(settleVacated(unplugged, [2], []).vacated, undefined, 'forgotten once it answered ENODEV');
  t.same(settleVacated(unplugged, [], []).vacated, [2], 'kept while nobody opened it');
  const replugged = advance(unplugged, live(1, 3, 4), 'observed');
  t.same(slots(replugged), { 1: 1, 3: 3, 4: 2 }, 'the kernel gives the vacated index to the next console');
  t.equal(replugged.vacated, undefined, 'and it is no longer vacated');
  t.same(parseModel(JSON.parse(JSON.stringify(unplugged))), unplugged, 'saved and read back with its vacated slots');
  t.equal(parseModel({ ...unplugged, vacated: [9] }), undefined, 'a vacated slot out of range is not a model');
});
