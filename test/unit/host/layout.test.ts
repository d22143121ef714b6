import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  channelNodes,
  chardevBackend,
  chardevsOf,
  chooseDevid,
  describeState,
  devidsOf,
  type NodeWrite,
} from '../../../agent/host/layout.js';
import { formatPermission } from '../../../agent/xenstore/perms.js';

/** A node as `xenstore-ls -fp` prints it. */
const asLs = (n: NodeWrite): string =>
  `${n.path} = ${JSON.stringify(n.value)}   (${n.perms.map(formatPermission).join(',')})`;

// What xl create wrote for a socket channel, read back with xenstore-ls -fp on real Xen 4.17.
const dump = readFileSync(new URL('../../fixtures/host/xl-create-socket-channel.txt', import.meta.url), 'utf8')
  .split('\n')
  .filter((line) => line.startsWith('/'));

t.test('channelNodes', async (t) => {
  t.test('writes exactly what xl create writes for a socket channel, at creation time', async (t) => {
    // The dump was taken once the guest had connected: the guest kernel had added ring-ref and
    // port, QEMU hotplug-status, and both had moved their state to 4. Before that, libxl wrote
    // state 1 on both sides. Our chardev id is ours (libxl's own is libxl-channel<devid>).
    const atCreation = dump
      .filter((line) => !/\/(ring-ref|port|hotplug-status) = /.test(line))
      .map((line) =>
        line
          .replace(
            /^(\/local\/domain\/2\/device\/console\/1\/state|\/local\/domain\/0\/backend\/console\/2\/1\/state) = "4"/,
            '$1 = "1"',
          )
          .replace('chardev:libxl-channel1', 'chardev:xen-channels-1'),
      );
    const ours = channelNodes({
      domid: 2,
      devid: 1,
      name: 'org.example.one',
      connection: { kind: 'socket', path: '/run/e2e-1.sock', mode: 'listen' },
      chardev: 'xen-channels-1',
    }).map(asLs);
    t.same([...ours].sort(), [...atCreation].sort());
    t.equal(ours.length, 29, '10 frontend, 10 backend, 9 bookkeeping nodes');
  });

  t.test('a pty channel has no path, connection pty and the pty in tty', async (t) => {
    const nodes = channelNodes({
      domid: 7,
      devid: 3,
      name: 'org.example.p',
      connection: { kind: 'pty' },
      chardev: 'xen-channels-3',
      tty: '/dev/pts/4',
    });
    const byPath = new Map(nodes.map((n) => [n.path, n]));
    t.equal(byPath.get('/local/domain/7/device/console/3/tty')?.value, '/dev/pts/4');
    t.same(byPath.get('/local/domain/7/device/console/3/tty')?.perms, [
      { domid: 0, access: 'none' },
      { domid: 7, access: 'read' },
    ]);
    t.equal(byPath.get('/local/domain/0/backend/console/7/3/connection')?.value, 'pty');
    t.equal(byPath.get('/libxl/7/device/console/3/connection')?.value, 'pty');
    t.notOk(byPath.has('/local/domain/0/backend/console/7/3/path'));
    t.notOk(byPath.has('/libxl/7/device/console/3/path'));
    t.equal(byPath.get('/local/domain/7/device/console/3/output')?.value, 'chardev:xen-channels-3');
  });

  t.test('a --connect channel is recorded like a socket channel', async (t) => {
    const nodes = channelNodes({
      domid: 4,
      devid: 2,
      name: 'n',
      connection: { kind: 'socket', path: '/run/l.sock', mode: 'connect' },
      chardev: 'xen-channels-2',
    });
    t.ok(nodes.some((n) => n.path === '/libxl/4/device/console/2/path' && n.value === '/run/l.sock'));
    t.ok(nodes.some((n) => n.path === '/libxl/4/device/console/2/connection' && n.value === 'socket'));
  });
});

t.test('chooseDevid', async (t) => {
  const cases: Array<[string, number[], number | undefined, number | RegExp]> = [
    ['the lowest free devid', [1, 2, 4], undefined, 3],
    ['devid 1 on an empty domain', [], undefined, 1],
    ['a wanted free devid', [1], 5, 5],
    ['a wanted devid in use', [1, 5], 5, /devid 5 is in use/],
    ['devid 10 (the kernel would not probe it)', [], 10, /devid 10 cannot work: .*use 1 to 9/],
    ['devid 0 (the primary console)', [], 0, /devid 0 cannot work/],
    ['nothing free in 1..9', [1, 2, 3, 4, 5, 6, 7, 8, 9], undefined, /every usable devid \(1 to 9\) is taken/],
    ['devid 0 and 10+ in use do not count', [0, 10, 11], undefined, 1],
  ];
  for (const [what, used, wanted, expected] of cases) {
    const got = chooseDevid(new Set(used), wanted);
    if (typeof expected === 'number') t.same(got, { devid: expected }, what);
    else t.match('error' in got ? got.error : '', expected, what);
  }
});

t.test('chardevsOf', async (t) => {
  t.same(chardevsOf('chardev:xen-channels-2', 2), ['xen-channels-2'], 'ours');
  t.same(chardevsOf('chardev:libxl-channel1', 1), ['libxl-channel1'], "libxl's socket channel");
  t.same(chardevsOf('pty', 3), ['xencons3', 'libxl-channel3'], "libxl's pty channel");
  t.same(chardevsOf(undefined, 3), [], 'no frontend');
  t.same(chardevsOf('file:/tmp/x', 3), [], 'anything else is left alone');
});

t.test('chardevBackend', async (t) => {
  t.same(chardevBackend({ kind: 'socket', path: '/run/a.sock', mode: 'listen' }), {
    type: 'socket',
    data: { addr: { type: 'unix', data: { path: '/run/a.sock' } }, server: true, wait: false },
  });
  t.same(
    chardevBackend({ kind: 'socket', path: '/run/a.sock', mode: 'connect' }),
    { type: 'socket', data: { addr: { type: 'unix', data: { path: '/run/a.sock' } }, server: false } },
    'client mode has no "wait" (QEMU refuses it there)',
  );
  t.same(chardevBackend({ kind: 'pty' }), { type: 'pty', data: {} });
});

t.test('devidsOf and describeState', async (t) => {
  t.same(devidsOf(['1', '12', 'x', '3a', '0']), [1, 12, 0]);
  t.equal(describeState('4'), '4 (Connected)');
  t.equal(describeState('6'), '6 (Closed)');
  t.equal(describeState('42'), '42');
  t.equal(describeState(undefined), '-');
});
