import { readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { reconcile, statePath } from '../../agent/reconcile.js';
import { probeSimulatedTty } from '../../agent/sim/guest.js';
import { XenstoreClient } from '../../agent/xenstore/client.js';
import { guestToDom0, linkTarget, recordingEnv, startGuest } from '../helpers/sim-guest.js';

t.test('channels present at boot get their links, and each link reaches its own channel', async (t) => {
  const guest = await startGuest(t);
  const names = ['org.qemu.guest_agent.0', 'org.example.a', 'org.example.b'];
  for (const [i, name] of names.entries()) await guest.plug(i + 1, name);
  const env = recordingEnv(guest);
  const client = await XenstoreClient.connect({ transport: env.xenstore });
  t.teardown(() => client.close());
  const result = await reconcile(env, client);
  t.equal(result.changed, true);
  for (const [i, name] of names.entries()) {
    for (const dir of ['vport', 'xen-channel', 'virtio-ports']) {
      t.equal(await linkTarget(guest, `${dir}/${name}`), `../hvc${i + 1}`, `${dir}/${name} -> hvc${i + 1}`);
    }
    const seen = await guestToDom0(guest, join(guest.roots.dev, 'vport', name), i + 1, `hello ${name}`);
    t.match(seen, `hello ${name}`, `bytes written to /dev/vport/${name} reach the dom0 socket of devid ${i + 1}`);
  }
  t.match(env.lines.join('\n'), /channel org\.example\.a \(devid 2\) is \/dev\/hvc2: \/dev\/vport\/org\.example\.a/);
  const again = await reconcile(env, client);
  t.equal(again.changed, false, 'a second run changes nothing');
});

t.test('the lab hotplug sequence keeps every link right, and unplug removes links', async (t) => {
  const guest = await startGuest(t);
  const env = recordingEnv(guest);
  const client = await XenstoreClient.connect({ transport: env.xenstore });
  t.teardown(() => client.close());
  const name = (devid: number) => `org.example.ch${devid}`;
  const steps: Array<[string, () => Promise<void>, Record<number, number>]> = [
    [
      'boot 1,2,3',
      async () => {
        for (const d of [1, 2, 3]) await guest.plug(d, name(d));
      },
      { 1: 1, 2: 2, 3: 3 },
    ],
    ['unplug 2', () => guest.unplug(2), { 1: 1, 3: 3 }],
    ['plug 4', () => guest.plug(4, name(4)), { 1: 1, 3: 3, 4: 2 }],
    ['plug 5', () => guest.plug(5, name(5)), { 1: 1, 3: 3, 4: 2, 5: 4 }],
    ['unplug 4', () => guest.unplug(4), { 1: 1, 3: 3, 5: 4 }],
    ['plug 6', () => guest.plug(6, name(6)), { 1: 1, 3: 3, 5: 4, 6: 2 }],
  ];
  for (const [what, act, expected] of steps) {
    await act();
    await reconcile(env, client);
    const table = Object.fromEntries([...guest.slotTable()].map(([slot, devid]) => [devid, slot]));
    t.same(table, expected, `${what}: the simulated kernel's slots`);
    for (const devid of [1, 2, 3, 4, 5, 6]) {
      const want = expected[devid];
      t.equal(
        await linkTarget(guest, `vport/${name(devid)}`),
        want === undefined ? undefined : `../hvc${want}`,
        `${what}: vport/${name(devid)}`,
      );
    }
  }
  const seen = await guestToDom0(guest, join(guest.roots.dev, 'vport', name(6)), 6, 'through hvc2 to devid 6');
  t.match(seen, 'through hvc2 to devid 6');
});

t.test('a restart in the middle of the sequence continues from the saved model', async (t) => {
  const guest = await startGuest(t);
  const env = recordingEnv(guest);
  for (const d of [1, 2, 3]) await guest.plug(d, `c${d}`);
  const first = await XenstoreClient.connect({ transport: env.xenstore });
  await reconcile(env, first);
  await first.close(); // the agent stops
  await guest.unplug(2);
  await guest.plug(4, 'c4'); // while nobody watched: 4 took hvc2
  const saved = JSON.parse(await readFile(statePath(env), 'utf8'));
  t.same(
    saved.model.live.map((a: { devid: number }) => a.devid),
    [1, 2, 3],
    'the saved model is from before the restart',
  );
  const second = await XenstoreClient.connect({ transport: env.xenstore });
  t.teardown(() => second.close());
  const result = await reconcile(env, second);
  t.equal(await linkTarget(guest, 'vport/c4'), '../hvc2', 'frees first, then allocations: c4 is hvc2');
  t.equal(await linkTarget(guest, 'vport/c2'), undefined);
  t.match(
    result.channels.find((c) => c.name === 'c4'),
    { slot: 2, basis: 'inferred' },
  );
});

t.test('bad names, unusable devids and duplicates are reported; good channels still get links', async (t) => {
  const guest = await startGuest(t);
  await guest.plug(1, 'good.one');
  await guest.plug(2, '../../etc/passwd');
  await guest.plug(3, Buffer.from('evil"\nRUN+="/bin/sh'));
  await guest.plug(4, 'good.one');
  await guest.plug(10, 'ten');
  const env = recordingEnv(guest);
  const client = await XenstoreClient.connect({ transport: env.xenstore });
  t.teardown(() => client.close());
  const result = await reconcile(env, client);
  t.equal(await linkTarget(guest, 'vport/good.one'), '../hvc1');
  const byKey = Object.fromEntries(result.channels.map((c) => [c.key, c]));
  t.match(byKey['2']?.problems, [/name "\.\.\/\.\.\/etc\/passwd" rejected: .*contains "\/"/]);
  t.match(byKey['3']?.problems, [/rejected: the name contains a control or non-ASCII byte/]);
  t.match(byKey['4']?.problems, [/name good\.one is also used by devid 1, which keeps it/]);
  t.match(byKey['10']?.problems, [/devid 10 cannot work.*use a devid from 1 to 9/]);
  t.same(byKey['4']?.links, []);
  const log = env.lines.join('\n');
  t.match(log, /warn: channel devid 2: name "\.\.\/\.\.\/etc\/passwd" rejected/);
  const hasControl = (line: string) => [...line].some((c) => c < ' ' || c === '\x7f');
  t.notOk(env.lines.some(hasControl), 'no control byte of a hostile name reaches a log line');
  t.match(log, /name "evil\\x22\\x0aRUN\+=\\x22\/bin\/sh" rejected/, 'it is shown escaped');
  const rerun = env.lines.length;
  await reconcile(env, client);
  t.equal(env.lines.length, rerun, 'problems are logged once, not on every run');
});

t.test(
  'a console the guest kernel never probes is reported stuck after the grace time, with the kernel to blame',
  async (t) => {
    const guest = await startGuest(t, { brokenKernel: true });
    let epoch = 1_000_000;
    const clock = { now: () => epoch, epochMs: () => epoch, sleep: () => Promise.resolve() };
    const env = recordingEnv(guest, { clock });
    await guest.plug(1, 'org.qemu.guest_agent.0');
    const client = await XenstoreClient.connect({ transport: env.xenstore });
    t.teardown(() => client.close());
    const first = await reconcile(env, client);
    t.same(first.channels[0]?.problems, [], 'not judged while within the grace time');
    t.equal(first.recheckAfterMs, 10_000, 'asks to be run again when the grace time ends');
    epoch += 10_500;
    const later = await reconcile(env, client);
    t.match(later.channels[0]?.problems, [
      /stuck in Initialising for more than 10 s although the backend is ready: this guest kernel did not probe it\. Linux 5\.16 .*probe of console-1 failed with error -2.*update the guest kernel/,
    ]);
    t.equal(later.recheckAfterMs, undefined);
    t.match(env.lines.join('\n'), /warn: channel org\.qemu\.guest_agent\.0: stuck in Initialising/);
  },
);

t.test(
  'a console whose tty is allocated but which is still Initialising does not unlink the others (docs review)',
  async (t) => {
    const guest = await startGuest(t);
    for (const d of [1, 2, 3]) await guest.plug(d, `boot${d}`);
    const env = recordingEnv(guest);
    const client = await XenstoreClient.connect({ transport: env.xenstore });
    t.teardown(() => client.close());
    await reconcile(env, client); // first run: boot order, assignments inferred
    // The kernel's probe of devid 4 has run hvc_alloc() (hvc4 exists) but not yet switched to
    // Initialised: frontend state 1 (no backend node, so the simulated kernel leaves it alone).
    guest.xenstored.write(`/local/domain/${guest.domid}/device/console/4/name`, 'hot4');
    guest.xenstored.write(`/local/domain/${guest.domid}/device/console/4/state`, '1');
    await symlink('/dev/null', join(guest.roots.dev, 'hvc4'));
    const during = await reconcile(env, client);
    for (const d of [1, 2, 3])
      t.equal(await linkTarget(guest, `vport/boot${d}`), `../hvc${d}`, `boot${d} keeps its link`);
    t.same(
      during.model.live.map((a) => a.basis),
      ['inferred', 'inferred', 'inferred'],
    );
    // An occupied slot that no waiting console can explain does make them uncertain.
    await symlink('/dev/null', join(guest.roots.dev, 'hvc6'));
    const wrong = await reconcile(env, client);
    t.same(
      wrong.model.live.map((a) => a.basis),
      ['uncertain', 'uncertain', 'uncertain'],
    );
    t.equal(await linkTarget(guest, 'vport/boot1'), undefined, 'uncertain: no link rather than a wrong one');
  },
);

/** A guest with boot1..3 on devids 1..3, linked by a first pass (inferred from boot order). */
async function bootedThreeChannels(t: Test) {
  const guest = await startGuest(t);
  for (const d of [1, 2, 3]) await guest.plug(d, `boot${d}`);
  const first = recordingEnv(guest);
  const client = await XenstoreClient.connect({ transport: first.xenstore });
  t.teardown(() => client.close());
  await reconcile(first, client);
  return { guest, first, client };
}

t.test(
  'a console plugged while the tty slots are being checked does not unlink the others (real Xen, agent-hotplug-sequence)',
  async (t) => {
    const { guest, client } = await bootedThreeChannels(t);
    // The next pass observes xenstore, then devid 4 is plugged (the kernel gives it hvc4)
    // before the pass gets to probing the free slots.
    let plugged = false;
    const racing = recordingEnv(guest, {
      probeTty: async (path: string) => {
        if (!plugged) {
          plugged = true;
          await guest.plug(4, 'race4');
        }
        return probeSimulatedTty(path);
      },
    });
    const result = await reconcile(racing, client);
    t.ok(plugged, 'the race happened');
    t.same(
      result.model.live.map((a) => `${a.devid}@${a.slot}:${a.basis}`),
      ['1@1:inferred', '2@2:inferred', '3@3:inferred', '4@4:observed'],
      'the second look saw devid 4; nothing became uncertain',
    );
    for (const d of [1, 2, 3]) t.equal(await linkTarget(guest, `vport/boot${d}`), `../hvc${d}`);
    t.equal(await linkTarget(guest, 'vport/race4'), '../hvc4');
    t.notMatch(racing.lines.join('\n'), /thought free/);
  },
);

t.test(
  'consoles plugged during every check of the tty slots never make the others uncertain (slow guest, CI failure)',
  async (t) => {
    const { guest, first, client } = await bootedThreeChannels(t);
    // Under software emulation one pass takes seconds: each time the pass probes the free
    // slots, another console has just been plugged, so xenstore never reads the same twice.
    const toPlug = [4, 5, 6, 7];
    let lastProbed = Number.POSITIVE_INFINITY;
    const racing = recordingEnv(guest, {
      probeTty: async (path: string) => {
        const slot = Number(path.slice(-1));
        // Each look probes the free slots upwards: a lower slot starts the next look.
        const devid = slot <= lastProbed ? toPlug.shift() : undefined;
        lastProbed = slot;
        if (devid !== undefined) await guest.plug(devid, `race${devid}`);
        return probeSimulatedTty(path);
      },
    });
    let result = await reconcile(racing, client);
    t.same(toPlug, [7], 'a console was plugged during each of the three looks');
    t.notMatch(racing.lines.join('\n'), /thought free/, 'no contradiction reported');
    for (const d of [1, 2, 3]) t.equal(await linkTarget(guest, `vport/boot${d}`), `../hvc${d}`, `boot${d} kept`);
    // Once the churn stops, the next passes place every console where the kernel put it.
    do result = await reconcile(first, client);
    while (result.changed);
    t.notOk(
      result.model.live.some((a) => a.basis === 'uncertain'),
      'nothing uncertain',
    );
    for (const a of result.model.live) {
      const name = a.devid <= 3 ? `boot${a.devid}` : `race${a.devid}`;
      t.equal(await linkTarget(guest, `vport/${name}`), `../hvc${a.slot}`, `${name} -> hvc${a.slot}`);
    }
  },
);

t.test(
  'an unplugged channel whose tty is still held open does not make the others uncertain (real Xen, agent-soak)',
  async (t) => {
    const { guest, first, client } = await bootedThreeChannels(t);
    await guest.unplug(2);
    // On real Xen the old hvc2 stayed openable while the raw holder still had it open.
    let stillHeld = true;
    const held = recordingEnv(guest, {
      probeTty: async (path: string) => (stillHeld && path.endsWith('hvc2') ? 'occupied' : probeSimulatedTty(path)),
    });
    // The agent's pass (only it opens vacated slots, after its raw holder let go); another
    // process still holds the old hvc2 here.
    const agentPass = { releaseBeforeProbe: async () => {} };
    const during = await reconcile(held, client, agentPass);
    t.same(during.model.vacated, [2], 'hvc2 is vacated, still answering');
    t.notMatch(held.lines.join('\n'), /thought free/);
    for (const d of [1, 3]) t.equal(await linkTarget(guest, `vport/boot${d}`), `../hvc${d}`, `boot${d} kept`);
    stillHeld = false;
    const after = await reconcile(held, client, agentPass);
    t.equal(after.model.vacated, undefined, 'forgotten once hvc2 answers ENODEV');
    await guest.plug(4, 'hot4');
    await reconcile(first, client);
    t.equal(await linkTarget(guest, 'vport/hot4'), '../hvc2', 'the next console gets hvc2');
  },
);
