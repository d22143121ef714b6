/*
 * Watch semantics of the simulated xenstored's pure core: registration (ack then first event),
 * which changes fire which watches with which path, relative watches, subtree removal,
 * permission filtering and the special @introduceDomain/@releaseDomain watches.
 * Layer: unit test of agent/sim/xenstored/{core,watches}.ts (no I/O).
 */
import t from 'tap';
import {
  type ConnState,
  closeConnection,
  eventPath,
  specialEvents,
  type Watch,
  watchEventFrame,
  watchMatches,
} from '../../../../agent/sim/xenstored/index.js';
import { PAYLOAD_MAX } from '../../../../agent/xenstore/wire.js';
import { Harness, nulTerminated, outcome, XsType } from '../helpers.js';

t.test('watchMatches', async (t) => {
  const w = (path: string): Watch => ({ path, token: 't', relative: false });
  const table: [watch: string, event: string, exact: boolean, fires: boolean][] = [
    ['/a', '/a', false, true],
    ['/a', '/a/b/c', false, true],
    ['/a/b', '/a', false, false],
    ['/a', '/ab', false, false],
    ['/', '/anything/at/all', false, true],
    ['/a', '/a/b', true, false],
    ['/a/b', '/a/b', true, true],
    ['@releaseDomain', '@releaseDomain', true, true],
    ['/', '@releaseDomain', true, false],
  ];
  for (const [watch, path, exact, fires] of table) {
    t.equal(
      watchMatches(w(watch), { path, exact }),
      fires,
      `${watch} ${fires ? 'fires' : 'stays quiet'} for ${path}${exact ? ' (exact)' : ''}`,
    );
  }
});

t.test('eventPath', async (t) => {
  const home = '/local/domain/3';
  t.equal(
    eventPath({ path: `${home}/x`, token: 't', relative: true }, home, `${home}/x/y`),
    'x/y',
    'relative watches strip the home',
  );
  t.equal(
    eventPath({ path: `${home}/x`, token: 't', relative: false }, home, `${home}/x/y`),
    `${home}/x/y`,
    'absolute watches do not',
  );
});

t.test('watchEventFrame', async (t) => {
  const frame = watchEventFrame('/a', 'tok');
  t.same(frame && { ...frame, payload: frame.payload.toString() }, {
    type: XsType.WATCH_EVENT,
    reqId: 0,
    txId: 0,
    payload: '/a\0tok\0',
  });
  t.equal(watchEventFrame('/a', 'x'.repeat(PAYLOAD_MAX)), undefined, 'oversized events are dropped');
});

t.test('WATCH', async (t) => {
  t.test('acknowledges, then fires once with the path as registered', async (t) => {
    const h = new Harness();
    const d3 = h.conn(3);
    h.write(h.dom0, '/local/domain/3', '');
    h.setPerms(h.dom0, '/local/domain/3', 'n3');
    const { all } = h.run(d3, XsType.WATCH, nulTerminated('x', 'tok'));
    t.same(
      all.map((d) => [d.conn.id, d.frame.type, d.frame.reqId, d.frame.payload.toString()]),
      [
        [d3.id, XsType.WATCH, 7, 'OK\0'],
        [d3.id, XsType.WATCH_EVENT, 0, 'x\0tok\0'],
      ],
    );
  });

  t.test('fires for missing and unreadable paths too (the first event is unconditional)', async (t) => {
    const h = new Harness();
    const { events } = h.run(h.conn(3), XsType.WATCH, nulTerminated('/no/such/node', 't'));
    t.same(events, ['conn#2 /no/such/node t']);
  });

  t.test('refuses the same path and token twice on one connection', async (t) => {
    const h = new Harness();
    const c = h.conn(0);
    t.equal(h.watch(c, '/a', 't'), 'OK\0');
    t.equal(h.watch(c, '/a', 't'), 'ERR:EEXIST');
    t.equal(h.watch(c, '/a', 'other'), 'OK\0', 'another token is another watch');
    t.equal(h.watch(h.conn(0), '/a', 't'), 'OK\0', 'another connection may use the same pair');
  });

  t.test('refuses malformed payloads and paths', async (t) => {
    const h = new Harness();
    t.equal(h.try(h.dom0, XsType.WATCH, nulTerminated('/a')), 'ERR:EINVAL', 'no token');
    t.equal(h.try(h.dom0, XsType.WATCH, nulTerminated('/a', 't', 'x')), 'ERR:EINVAL', 'three strings');
    t.equal(h.try(h.dom0, XsType.WATCH, nulTerminated('/a/', 't')), 'ERR:EINVAL', 'trailing slash');
  });

  t.test('ignores the tx_id', async (t) => {
    const h = new Harness();
    t.equal(h.try(h.dom0, XsType.WATCH, nulTerminated('/a', 't'), 99), 'OK\0');
    t.equal(h.try(h.dom0, XsType.UNWATCH, nulTerminated('/a', 't'), 99), 'OK\0');
  });

  t.test('limits a guest domain to 129 watches (quota 128, checked with ">")', async (t) => {
    const h = new Harness();
    const a = h.conn(3);
    const b = h.conn(3);
    for (let i = 0; i < 100; i++) h.watch(a, '/w', `a${i}`);
    for (let i = 0; i < 29; i++) h.watch(b, '/w', `b${i}`);
    t.equal(h.watch(b, '/w', 'one-more'), 'ERR:E2BIG', 'counted across the domain');
    for (let i = 0; i < 200; i++) h.watch(h.dom0, '/w', `d${i}`);
    t.equal(h.watch(h.dom0, '/w', 'fine'), 'OK\0', 'dom0 has no watch quota');
  });
});

t.test('UNWATCH', async (t) => {
  const h = new Harness();
  const c = h.conn(3);
  h.watch(c, 'x', 't');
  t.equal(h.try(c, XsType.UNWATCH, nulTerminated('/local/domain/3/x', 'other')), 'ERR:ENOENT', 'unknown token');
  t.equal(h.try(c, XsType.UNWATCH, nulTerminated('/local/domain/3/x', 't')), 'OK\0', 'matched on the canonical path');
  t.equal(h.try(c, XsType.UNWATCH, nulTerminated('x', 't')), 'ERR:ENOENT', 'gone');
  t.equal(h.try(c, XsType.UNWATCH, nulTerminated('x')), 'ERR:EINVAL', 'no token');
  h.write(h.dom0, '/y', 'v');
  h.setPerms(h.dom0, '/y', 'r0');
  h.watch(c, '/y', 't');
  t.same(h.run(h.dom0, XsType.WRITE, '/y\0v').events, ['conn#2 /y t'], 'other watches stay');
});

/** dom0 has /a/b/c and /pub (r0); domain 3 has its home (n3). */
function world(): Harness {
  const h = new Harness();
  for (const [path, perms] of [
    ['/a/b/c', ''],
    ['/pub', 'r0'],
    ['/local/domain/3', 'n3'],
  ] as const) {
    h.write(h.dom0, path, 'v');
    if (perms) h.setPerms(h.dom0, path, perms);
  }
  return h;
}

type Step = (h: Harness, c: Record<string, ConnState>) => string[];

const changes: [name: string, step: Step, expected: (c: Record<string, ConnState>) => string[]][] = [
  [
    'a write fires watches on the node and its ancestors with the node path',
    (h) => h.run(h.dom0, XsType.WRITE, '/a/b/c\0new').events,
    (c) => [`conn#${c.d0?.id} /a/b/c a`, `conn#${c.d0?.id} /a/b/c abc`, `conn#${c.d0?.id} /a/b/c root`],
  ],
  [
    'a creation fires the same way, and never watches below the node',
    (h) => h.run(h.dom0, XsType.WRITE, '/a/new\0x').events,
    (c) => [`conn#${c.d0?.id} /a/new a`, `conn#${c.d0?.id} /a/new root`],
  ],
  [
    'MKDIR of a new node fires, MKDIR of an existing one does not',
    (h) => [
      ...h.run(h.dom0, XsType.MKDIR, nulTerminated('/a/m')).events,
      ...h.run(h.dom0, XsType.MKDIR, nulTerminated('/a')).events,
    ],
    (c) => [`conn#${c.d0?.id} /a/m a`, `conn#${c.d0?.id} /a/m root`],
  ],
  [
    'removing a subtree fires watches below it with their own paths, then the root for watches above',
    (h) => h.run(h.dom0, XsType.RM, nulTerminated('/a/b')).events,
    (c) => [`conn#${c.d0?.id} /a/b/c abc`, `conn#${c.d0?.id} /a/b a`, `conn#${c.d0?.id} /a/b root`],
  ],
  ['removing a missing node fires nothing', (h) => h.run(h.dom0, XsType.RM, nulTerminated('/a/zzz')).events, () => []],
  [
    'a relative watch gets relative paths; absolute watches get absolute ones',
    (h, c) => h.run(c.d3 as ConnState, XsType.WRITE, 'x/y\0v').events,
    (c) => [`conn#${c.d0?.id} /local/domain/3/x/y root`, `conn#${c.d3?.id} x/y rel`],
  ],
  [
    'a guest does not see changes to nodes it cannot read',
    (h) => h.run(h.dom0, XsType.WRITE, '/a\0secret').events,
    (c) => [`conn#${c.d0?.id} /a a`, `conn#${c.d0?.id} /a root`],
  ],
  [
    'a guest sees changes to nodes it can read',
    (h) => h.run(h.dom0, XsType.WRITE, '/pub\0news').events,
    (c) => [`conn#${c.d0?.id} /pub root`, `conn#${c.d3?.id} /pub pub`],
  ],
  [
    'granting read access fires for the new reader',
    (h) => h.run(h.dom0, XsType.SET_PERMS, nulTerminated('/a', 'r3')).events,
    (c) => [`conn#${c.d0?.id} /a a`, `conn#${c.d0?.id} /a root`, `conn#${c.d3?.id} /a a3`],
  ],
  [
    'revoking read access still tells the old reader (old permissions count)',
    (h) => h.run(h.dom0, XsType.SET_PERMS, nulTerminated('/pub', 'n0')).events,
    (c) => [`conn#${c.d0?.id} /pub root`, `conn#${c.d3?.id} /pub pub`],
  ],
  [
    'a readable parent is enough to see a change to an unreadable child (watch_permitted)',
    (h) => {
      h.write(h.dom0, '/pub/hidden', 'x');
      h.setPerms(h.dom0, '/pub/hidden', 'n0');
      return h.run(h.dom0, XsType.WRITE, '/pub/hidden\0y').events;
    },
    (c) => [`conn#${c.d0?.id} /pub/hidden root`, `conn#${c.d3?.id} /pub/hidden pub`],
  ],
  [
    'removing a node a guest could read tells the guest',
    (h) => h.run(h.dom0, XsType.RM, nulTerminated('/pub')).events,
    (c) => [`conn#${c.d0?.id} /pub root`, `conn#${c.d3?.id} /pub pub`],
  ],
  [
    'special events fire exact watches only, for dom0 by default',
    (h) =>
      specialEvents(h.state, '@releaseDomain').map(
        (d) => `conn#${d.conn.id} ${d.frame.payload.toString().split('\0').slice(0, 2).join(' ')}`,
      ),
    (c) => [`conn#${c.d0?.id} @releaseDomain rel`],
  ],
  [
    'special events reach guests once dom0 lets them read the special node',
    (h) => {
      h.setPerms(h.dom0, '@releaseDomain', 'n0', 'r3');
      return specialEvents(h.state, '@releaseDomain').map(
        (d) => `conn#${d.conn.id} ${d.frame.payload.toString().split('\0').slice(0, 2).join(' ')}`,
      );
    },
    (c) => [`conn#${c.d0?.id} @releaseDomain rel`, `conn#${c.d3?.id} @releaseDomain rel3`],
  ],
];

t.test('which changes fire which watches', async (t) => {
  for (const [name, step, expected] of changes) {
    const h = world();
    const c: Record<string, ConnState> = { d0: h.conn(0), d3: h.conn(3) };
    const d0 = c.d0 as ConnState;
    const d3 = c.d3 as ConnState;
    for (const [conn, path, token] of [
      [d0, '/a', 'a'],
      [d0, '/a/b/c', 'abc'],
      [d0, '/a/b/c/d', 'below'],
      [d0, '/', 'root'],
      [d0, '@releaseDomain', 'rel'],
      [d3, 'x', 'rel'],
      [d3, '/a', 'a3'],
      [d3, '/pub', 'pub'],
      [d3, '@releaseDomain', 'rel3'],
    ] as const) {
      if (h.watch(conn, path, token) !== 'OK\0') throw new Error(`watch ${path} failed`);
    }
    t.same(step(h, c), expected(c), name);
  }
});

t.test('a closed connection loses its watches', async (t) => {
  const h = new Harness();
  const c = h.conn(0);
  h.watch(c, '/a', 't');
  closeConnection(h.state, c);
  t.same(h.run(h.dom0, XsType.WRITE, '/a\0v').events, []);
});

t.test("RESET_WATCHES drops the connection's watches", async (t) => {
  const h = new Harness();
  const c = h.conn(0);
  h.watch(c, '/a', 't');
  t.equal(outcome(h.run(c, XsType.RESET_WATCHES, '').reply), 'OK\0');
  t.same(h.run(h.dom0, XsType.WRITE, '/a\0v').events, []);
});

t.test('INTRODUCE and RELEASE fire the special watches', async (t) => {
  const h = new Harness();
  const c = h.conn(0);
  h.watch(c, '@introduceDomain', 'in');
  h.watch(c, '@releaseDomain', 'out');
  t.same(h.run(h.dom0, XsType.INTRODUCE, nulTerminated('5', '1234', '7')).events, ['conn#2 @introduceDomain in']);
  t.same(h.run(h.dom0, XsType.INTRODUCE, nulTerminated('5', '1234', '7')).events, [], 'not again for a known domain');
  t.equal(h.try(h.dom0, XsType.IS_DOMAIN_INTRODUCED, nulTerminated('5')), 'T\0');
  t.same(h.run(h.dom0, XsType.RELEASE, nulTerminated('5')).events, ['conn#2 @releaseDomain out']);
  t.equal(h.try(h.dom0, XsType.IS_DOMAIN_INTRODUCED, nulTerminated('5')), 'F\0');
  t.equal(h.try(h.dom0, XsType.RELEASE, nulTerminated('5')), 'ERR:ENOENT', 'not introduced any more');
  t.equal(h.try(h.dom0, XsType.RELEASE, nulTerminated('0')), 'ERR:EINVAL');
  t.equal(h.try(h.dom0, XsType.INTRODUCE, nulTerminated('5')), 'ERR:EINVAL', 'needs domid, mfn and port');
  t.equal(h.try(h.dom0, XsType.INTRODUCE, nulTerminated('0', '1', '2')), 'ERR:EINVAL');
  t.equal(h.try(h.dom0, XsType.IS_DOMAIN_INTRODUCED, nulTerminated('0')), 'T\0', 'dom0 is always there');
  t.equal(h.try(h.dom0, XsType.IS_DOMAIN_INTRODUCED, nulTerminated(String(0x7ff0))), 'T\0', 'DOMID_SELF');
  t.equal(h.try(h.dom0, XsType.IS_DOMAIN_INTRODUCED, ''), 'ERR:EINVAL');
  t.equal(h.try(h.dom0, XsType.RELEASE, ''), 'ERR:EINVAL');
});
