/*
 * xen-channel host's operations against the simulated xenstored, a scripted QEMU (QMP over an
 * in-memory pair) and a fake guest kernel that follows the xenbus handshake from its own,
 * unprivileged connection, so the permissions libxl gives the guest are exercised too.
 */
import t from 'tap';
import { attachChannel, detachChannel, listChannels, resolveDomain } from '../../agent/host/channels.js';
import { HostChannelNotFoundError, HostTimeoutError } from '../../agent/host/errors.js';
import { channelNodes } from '../../agent/host/layout.js';
import { GUEST, hostWorld } from '../helpers/host-world.js';

const socketTo = (path: string) => ({ kind: 'socket', path, mode: 'listen' }) as const;

t.test('attach', async (t) => {
  t.test('adds the chardev, writes libxl layout with its permissions, waits until the guest connects', async (t) => {
    const w = await hostWorld(t);
    const { channel, already } = await attachChannel(w.env, {
      domain: 'vm-a',
      name: 'org.example.alpha',
      connection: socketTo('/run/alpha.sock'),
      timeoutMs: 30_000,
    });
    t.equal(already, false);
    t.match(channel, {
      domid: GUEST,
      domain: 'vm-a',
      devid: 2,
      name: 'org.example.alpha',
      connection: 'socket',
      path: '/run/alpha.sock',
      output: 'chardev:xen-channels-2',
      frontendState: '4',
      backendState: '4',
      recorded: true,
    });
    t.same(w.qemu.chardevs.get('xen-channels-2'), {
      type: 'socket',
      data: { addr: { type: 'unix', data: { path: '/run/alpha.sock' } }, server: true, wait: false },
    });
    for (const node of channelNodes({
      domid: GUEST,
      devid: 2,
      name: 'org.example.alpha',
      connection: socketTo('/run/alpha.sock'),
      chardev: 'xen-channels-2',
    })) {
      t.same(w.sim.getPerms(node.path), node.perms, `permissions of ${node.path}`);
    }
    const fe = `/local/domain/${GUEST}/device/console/2`;
    await t.rejects(w.guest.write(`${fe}/name`, 'evil'), { code: 'EACCES' }, 'the guest cannot rename its channel');
    await t.rejects(
      w.guest.write(`/local/domain/0/backend/console/${GUEST}/2/path`, '/etc/x'),
      { code: 'EACCES' },
      'the guest cannot touch the backend',
    );
    t.match(w.env.notes.join('\n'), /attached org\.example\.alpha to domain vm-a \(3\) as devid 2/);
    t.same(w.clock.pending, [], 'no timer left');
  });

  t.test('is idempotent: the same name and socket again changes nothing', async (t) => {
    const w = await hostWorld(t);
    const request = {
      domain: '3',
      name: 'org.example.alpha',
      connection: socketTo('/run/alpha.sock'),
      timeoutMs: 30_000,
    };
    await attachChannel(w.env, request);
    const adds = w.qemu.log.filter((l) => l.startsWith('chardev-add')).length;
    const again = await attachChannel(w.env, request);
    t.equal(again.already, true);
    t.equal(again.channel.devid, 2);
    t.equal(w.qemu.log.filter((l) => l.startsWith('chardev-add')).length, adds, 'no second chardev-add');
  });

  t.test('a pty channel records the pty QEMU opened', async (t) => {
    const w = await hostWorld(t);
    const { channel } = await attachChannel(w.env, {
      domain: 'vm-a',
      name: 'org.example.p',
      connection: { kind: 'pty' },
      devid: 7,
      timeoutMs: 30_000,
    });
    t.match(channel, { devid: 7, connection: 'pty', tty: '/dev/pts/5', path: undefined });
    t.same(w.qemu.chardevs.get('xen-channels-7'), { type: 'pty', data: {} });
  });

  t.test('refuses, changing nothing, what cannot work', async (t) => {
    const w = await hostWorld(t);
    const base = { domain: 'vm-a', timeoutMs: 30_000 };
    const cases: Array<[string, Parameters<typeof attachChannel>[1], RegExp]> = [
      [
        'a name the guest would not link',
        { ...base, name: 'a b', connection: { kind: 'pty' } },
        /channel name "a b" is not accepted/,
      ],
      [
        'a name in use with another socket',
        { ...base, name: 'org.example.boot', connection: socketTo('/run/x.sock') },
        /already has a channel named org\.example\.boot \(devid 1/,
      ],
      [
        'a socket path in use',
        { ...base, name: 'n', connection: socketTo('/run/boot.sock') },
        /\/run\/boot\.sock is already the socket of channel org\.example\.boot \(devid 1\) of domain vm-a/,
      ],
      [
        'a socket a program listens on',
        { ...base, name: 'n', connection: socketTo('/run/busy.sock') },
        /a program already listens on \/run\/busy\.sock: QEMU would replace its socket; use --connect/,
      ],
      [
        'devid 10',
        { ...base, name: 'n', connection: { kind: 'pty' }, devid: 10 },
        /devid 10 cannot work: the guest kernel reads only the last digit/,
      ],
      ['a devid in use', { ...base, name: 'n', connection: { kind: 'pty' }, devid: 1 }, /devid 1 is in use/],
      [
        'an unknown domain',
        { ...base, domain: 'nope', name: 'n', connection: { kind: 'pty' } },
        /no running guest "nope" \(guests: vm-a \(3\), vm-b \(5\)\); see xl list/,
      ],
      [
        'dom0',
        { ...base, domain: '0', name: 'n', connection: { kind: 'pty' } },
        /channels belong to guests, not to dom0/,
      ],
      [
        'a domain without QEMU',
        { ...base, domain: 'vm-b', name: 'n', connection: { kind: 'pty' } },
        /domain 5 has no QEMU/,
      ],
    ];
    for (const [what, request, message] of cases) {
      await t.rejects(attachChannel(w.env, request), { name: 'HostError', message }, what);
    }
    t.same([...w.qemu.chardevs.keys()], ['libxl-channel1'], 'no chardev added');
    t.same(w.sim.directory(`/local/domain/${GUEST}/device/console`), ['1'], 'no frontend added');
  });

  t.test('removes a chardev left behind by an interrupted detach before reusing its id', async (t) => {
    const w = await hostWorld(t);
    w.qemu.chardevs.set('xen-channels-2', { type: 'pty' });
    await attachChannel(w.env, { domain: 'vm-a', name: 'n', connection: socketTo('/run/n.sock'), timeoutMs: 1000 });
    t.same(
      w.qemu.log.filter((l) => l.startsWith('chardev')),
      ['chardev-remove xen-channels-2', 'chardev-add xen-channels-2'],
    );
  });

  t.test('a guest that does not connect: a clear timeout, the channel stays attached', async (t) => {
    const w = await hostWorld(t);
    w.answer.value = false;
    const attaching = attachChannel(w.env, {
      domain: 'vm-a',
      name: 'n',
      connection: { kind: 'pty' },
      timeoutMs: 30_000,
    });
    while (w.clock.pending.length === 0) await new Promise((r) => setImmediate(r));
    w.clock.fire();
    const error = await attaching.catch((e: unknown) => e);
    t.type(error, HostTimeoutError);
    t.match(
      (error as Error).message,
      /did not connect channel n \(devid 2\) within 30 s: frontend state 1 \(Initialising\).*lack working channel support.*xen-channel host detach 3 --devid 2/,
    );
    t.equal(w.sim.read(`/local/domain/${GUEST}/device/console/2/name`)?.toString(), 'n');
  });
});

t.test('detach', async (t) => {
  t.test('Closing, then the guest closes, then removal, then chardev-remove; the devid is free again', async (t) => {
    const w = await hostWorld(t);
    await attachChannel(w.env, { domain: 'vm-a', name: 'a', connection: socketTo('/run/a.sock'), timeoutMs: 1000 });
    const removed = await detachChannel(w.env, { domain: 'vm-a', name: 'a', timeoutMs: 30_000 });
    t.equal(removed.devid, 2);
    t.same(
      w.seenBackendClosing,
      [{ devid: '2', frontendPresent: true }],
      'the guest saw Closing while its directory was there',
    );
    for (const p of [
      `/local/domain/${GUEST}/device/console/2`,
      `/local/domain/0/backend/console/${GUEST}/2`,
      `/libxl/${GUEST}/device/console/2`,
    ]) {
      t.equal(w.sim.read(p), undefined, `${p} removed`);
    }
    t.notOk(w.qemu.chardevs.has('xen-channels-2'), 'chardev removed');
    t.ok(w.qemu.chardevs.has('libxl-channel1'), "the boot channel's chardev is kept");
    const again = await attachChannel(w.env, {
      domain: 'vm-a',
      name: 'b',
      connection: socketTo('/run/b.sock'),
      timeoutMs: 1000,
    });
    t.equal(again.channel.devid, 2, 'the next attach reuses devid 2');
    t.same(w.clock.pending, []);
  });

  t.test('retries chardev-remove while QEMU still calls the chardev busy', async (t) => {
    const w = await hostWorld(t);
    w.qemu.busyRemovals = 2;
    const detaching = detachChannel(w.env, { domain: 'vm-a', devid: 1, timeoutMs: 30_000 });
    for (let fired = 0; fired < 2; ) {
      await new Promise((r) => setImmediate(r));
      if (w.clock.pending.includes(200)) {
        w.clock.fire();
        fired++;
      }
    }
    await detaching;
    t.same(
      w.qemu.log.filter((l) => l.startsWith('chardev-remove')),
      ['chardev-remove libxl-channel1', 'chardev-remove libxl-channel1', 'chardev-remove libxl-channel1'],
    );
    t.notOk(w.qemu.chardevs.has('libxl-channel1'));
  });

  t.test('a channel libxl created: by devid, and its libxl-channel chardev goes too', async (t) => {
    const w = await hostWorld(t);
    await detachChannel(w.env, { domain: '3', devid: 1, timeoutMs: 30_000 });
    t.notOk(w.qemu.chardevs.has('libxl-channel1'));
    t.same(w.sim.directory(`/local/domain/${GUEST}/device/console`), []);
    t.equal(w.sim.read(`/libxl/${GUEST}/device/console/1`), undefined);
  });

  t.test('a guest that does not close: the channel is left Closing but present', async (t) => {
    const w = await hostWorld(t);
    w.answer.value = false;
    const detaching = detachChannel(w.env, { domain: 'vm-a', devid: 1, timeoutMs: 5000 });
    while (w.clock.pending.length === 0) await new Promise((r) => setImmediate(r));
    w.clock.fire();
    const error = await detaching.catch((e: unknown) => e);
    t.type(error, HostTimeoutError);
    t.match(
      (error as Error).message,
      /did not close channel org\.example\.boot \(devid 1\) within 5 s \(frontend state 4 \(Connected\)\)\. The channel is left Closing but present/,
    );
    const be = `/local/domain/0/backend/console/${GUEST}/1`;
    t.equal(w.sim.read(`${be}/state`)?.toString(), '5');
    t.equal(w.sim.read(`${be}/online`)?.toString(), '0');
    t.equal(w.sim.read(`/local/domain/${GUEST}/device/console/1/state`)?.toString(), '4', 'frontend untouched');
    t.ok(w.qemu.chardevs.has('libxl-channel1'), 'chardev kept');
  });

  t.test('a console the guest never set up is removed without waiting', async (t) => {
    const w = await hostWorld(t);
    w.answer.value = false;
    const attaching = attachChannel(w.env, { domain: 'vm-a', name: 'n', connection: { kind: 'pty' }, timeoutMs: 1000 });
    while (w.clock.pending.length === 0) await new Promise((r) => setImmediate(r));
    w.clock.fire();
    await t.rejects(attaching, HostTimeoutError);
    await detachChannel(w.env, { domain: 'vm-a', name: 'n', timeoutMs: 1000 });
    t.same(w.sim.directory(`/local/domain/${GUEST}/device/console`), ['1']);
    t.notOk(w.qemu.chardevs.has('xen-channels-2'));
  });

  t.test('no such channel', async (t) => {
    const w = await hostWorld(t);
    await t.rejects(detachChannel(w.env, { domain: 'vm-a', name: 'nope', timeoutMs: 1000 }), HostChannelNotFoundError);
    await t.rejects(detachChannel(w.env, { domain: 'vm-a', devid: 4, timeoutMs: 1000 }), {
      message: /domain vm-a \(3\) has no channel devid 4 \(channels: 1 org\.example\.boot\); nothing to detach/,
    });
  });
});

t.test('list and resolveDomain', async (t) => {
  const w = await hostWorld(t);
  await attachChannel(w.env, { domain: 'vm-a', name: 'org.example.p', connection: { kind: 'pty' }, timeoutMs: 1000 });
  const all = await listChannels(w.env.xs);
  t.match(all, [
    {
      domain: 'vm-a',
      devid: 1,
      name: 'org.example.boot',
      connection: 'socket',
      path: '/run/boot.sock',
      frontendState: '4',
      recorded: true,
    },
    {
      domain: 'vm-a',
      devid: 2,
      name: 'org.example.p',
      connection: 'pty',
      tty: '/dev/pts/5',
      frontendState: '4',
      backendState: '4',
    },
  ]);
  t.equal(all.length, 2, 'vm-b has no channels');
  t.same(await listChannels(w.env.xs, 'vm-b'), []);
  t.same(await resolveDomain(w.env.xs, '5'), { domid: 5, name: 'vm-b' });
  await t.rejects(listChannels(w.env.xs, '9'), { message: /no running guest "9"/ });
});
