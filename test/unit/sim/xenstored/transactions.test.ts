/*
 * Transactions of the simulated xenstored's pure core: ids, isolation, conflict detection by
 * generation (conflict and no-conflict cases as a table), abort, watches firing at commit only,
 * the per-connection limit, and cleanup.
 * Layer: unit test of agent/sim/xenstored/{core,transaction}.ts (no I/O).
 */
import t from 'tap';
import { type ConnState, closeConnection } from '../../../../agent/sim/xenstored/index.js';
import { Harness, nulTerminated, XsType } from '../helpers.js';

/** dom0 has /a = "1" and /b = "2". */
function world(): { h: Harness; me: ConnState; other: ConnState } {
  const h = new Harness();
  h.write(h.dom0, '/a', '1');
  h.write(h.dom0, '/b', '2');
  return { h, me: h.conn(0), other: h.conn(0) };
}

const end = (h: Harness, conn: ConnState, tx: number, commit = true): string =>
  h.try(conn, XsType.TRANSACTION_END, nulTerminated(commit ? 'T' : 'F'), tx);

type Scenario = [
  name: string,
  run: (h: Harness, me: ConnState, other: ConnState, tx: number) => void,
  commit: string,
  after: Record<string, string>,
];

const scenarios: Scenario[] = [
  [
    'a node read in the transaction and changed outside conflicts',
    (h, me, other, tx) => {
      h.read(me, '/a', tx);
      h.write(other, '/a', 'other');
      h.write(me, '/c', 'mine', tx);
    },
    'ERR:EAGAIN',
    { '/a': 'other', '/c': 'ERR:ENOENT' },
  ],
  [
    'a change to a node the transaction never touched does not conflict',
    (h, me, other, tx) => {
      h.read(me, '/a', tx);
      h.write(other, '/b', 'other');
      h.write(me, '/a', 'mine', tx);
    },
    'OK\0',
    { '/a': 'mine', '/b': 'other' },
  ],
  [
    'a node found missing and created outside conflicts',
    (h, me, other, tx) => {
      h.read(me, '/m', tx);
      h.write(other, '/m', 'other');
    },
    'ERR:EAGAIN',
    { '/m': 'other' },
  ],
  [
    'a node written in the transaction and changed outside conflicts',
    (h, me, other, tx) => {
      h.write(me, '/a', 'mine', tx);
      h.write(other, '/a', 'other');
    },
    'ERR:EAGAIN',
    { '/a': 'other' },
  ],
  [
    'a node read in the transaction and removed outside conflicts',
    (h, me, other, tx) => {
      h.read(me, '/a', tx);
      h.try(other, XsType.RM, nulTerminated('/a'));
      h.write(me, '/b', 'mine', tx);
    },
    'ERR:EAGAIN',
    { '/a': 'ERR:ENOENT', '/b': '2' },
  ],
  [
    'creating a sibling outside conflicts with a creation inside (the parent changed)',
    (h, me, other, tx) => {
      h.write(me, '/new/x', 'mine', tx);
      h.write(other, '/sibling', 'other');
    },
    'ERR:EAGAIN',
    { '/new/x': 'ERR:ENOENT', '/sibling': 'other' },
  ],
  [
    'a change made before the transaction first looks at a node is simply seen',
    (h, me, other, tx) => {
      h.write(other, '/a', 'early');
      if (h.read(me, '/a', tx) !== 'early') throw new Error('the transaction should see the early write');
      h.write(me, '/b', 'mine', tx);
    },
    'OK\0',
    { '/a': 'early', '/b': 'mine' },
  ],
  [
    'a removal and re-creation inside commits as the final state',
    (h, me, _other, tx) => {
      h.try(me, XsType.RM, nulTerminated('/a'), tx);
      h.write(me, '/a/sub', 'again', tx);
    },
    'OK\0',
    { '/a': '', '/a/sub': 'again' },
  ],
];

t.test('conflict detection', async (t) => {
  for (const [name, run, commit, after] of scenarios) {
    const { h, me, other } = world();
    const tx = h.startTransaction(me);
    run(h, me, other, tx);
    t.equal(end(h, me, tx), commit, `${name}: commit`);
    for (const [path, value] of Object.entries(after)) t.equal(h.read(h.dom0, path), value, `${name}: ${path}`);
  }
});

t.test('isolation', async (t) => {
  t.test('a transaction sees its own changes; others see them only after commit', async (t) => {
    const { h, me, other } = world();
    const tx = h.startTransaction(me);
    t.equal(h.write(me, '/a', 'mine', tx), 'OK\0');
    t.equal(h.try(me, XsType.RM, nulTerminated('/b'), tx), 'OK\0');
    t.equal(h.read(me, '/a', tx), 'mine');
    t.equal(h.read(me, '/b', tx), 'ERR:ENOENT');
    t.equal(h.read(other, '/a'), '1');
    t.equal(h.read(me, '/b'), '2', 'the same connection outside the transaction sees the old tree');
    t.equal(end(h, me, tx), 'OK\0');
    t.equal(h.read(other, '/a'), 'mine');
    t.equal(h.read(other, '/b'), 'ERR:ENOENT');
  });

  t.test('an aborted transaction changes nothing', async (t) => {
    const { h, me } = world();
    const tx = h.startTransaction(me);
    h.write(me, '/a', 'mine', tx);
    h.write(me, '/new', 'x', tx);
    t.equal(end(h, me, tx, false), 'OK\0');
    t.equal(h.read(h.dom0, '/a'), '1');
    t.equal(h.read(h.dom0, '/new'), 'ERR:ENOENT');
  });

  t.test('DIRECTORY in a transaction lists its own children', async (t) => {
    const { h, me } = world();
    const tx = h.startTransaction(me);
    h.write(me, '/a/x', '', tx);
    t.equal(h.try(me, XsType.DIRECTORY, nulTerminated('/a'), tx), 'x\0');
    t.equal(h.try(me, XsType.DIRECTORY, nulTerminated('/a')), '');
  });
});

t.test('watches', async (t) => {
  t.test('fire at commit only, once per changed node, before the OK', async (t) => {
    const { h, me } = world();
    const watcher = h.conn(0);
    h.watch(watcher, '/a', 'w');
    const tx = h.startTransaction(me);
    t.same(h.run(me, XsType.WRITE, '/a\0x', tx).events, [], 'nothing while open');
    t.same(h.run(me, XsType.WRITE, '/a\0y', tx).events, []);
    t.same(h.run(me, XsType.WRITE, '/a/sub\0z', tx).events, []);
    const { all } = h.run(me, XsType.TRANSACTION_END, nulTerminated('T'), tx);
    t.same(
      all.map((d) => `conn#${d.conn.id} ${d.frame.type} ${d.frame.payload.toString()}`),
      [`conn#${watcher.id} 15 /a\0w\0`, `conn#${watcher.id} 15 /a/sub\0w\0`, `conn#${me.id} 7 OK\0`],
    );
  });

  t.test('do not fire when the transaction fails or is aborted', async (t) => {
    const { h, me, other } = world();
    const watcher = h.conn(0);
    h.watch(watcher, '/b', 'w');
    const tx1 = h.startTransaction(me);
    h.write(me, '/b', 'x', tx1);
    t.same(h.run(me, XsType.TRANSACTION_END, nulTerminated('F'), tx1).events, []);
    const tx2 = h.startTransaction(me);
    h.write(me, '/b', 'x', tx2);
    h.write(other, '/b', 'y');
    const run = h.run(me, XsType.TRANSACTION_END, nulTerminated('T'), tx2);
    t.same(run.events, []);
    t.equal(run.reply.payload.toString(), 'EAGAIN\0');
  });

  t.test('removals inside a transaction fire for every removed node at commit', async (t) => {
    const { h, me } = world();
    h.write(h.dom0, '/a/x/y', 'v');
    const watcher = h.conn(0);
    for (const path of ['/a', '/a/x/y']) h.watch(watcher, path, path);
    const tx = h.startTransaction(me);
    h.try(me, XsType.RM, nulTerminated('/a'), tx);
    const { events } = h.run(me, XsType.TRANSACTION_END, nulTerminated('T'), tx);
    t.same(events.sort(), [`conn#${watcher.id} /a /a`, `conn#${watcher.id} /a/x/y /a/x/y`]);
  });
});

t.test('ids and errors', async (t) => {
  t.test('ids are per connection and start at 1', async (t) => {
    const h = new Harness();
    const a = h.conn(0);
    const b = h.conn(0);
    t.equal(h.try(a, XsType.TRANSACTION_START, '\0'), '1\0');
    t.equal(h.try(a, XsType.TRANSACTION_START, '\0'), '2\0');
    t.equal(h.try(b, XsType.TRANSACTION_START, '\0'), '1\0');
  });

  t.test("replies carry the request's req_id and tx_id", async (t) => {
    const { h, me } = world();
    const tx = h.startTransaction(me);
    const { reply } = h.run(me, XsType.READ, nulTerminated('/a'), tx);
    t.same({ type: reply.type, reqId: reply.reqId, txId: reply.txId }, { type: XsType.READ, reqId: 7, txId: tx });
    const failed = h.run(me, XsType.READ, nulTerminated('/zz'), tx).reply;
    t.same({ type: failed.type, reqId: failed.reqId, txId: failed.txId }, { type: XsType.ERROR, reqId: 7, txId: tx });
  });

  t.test('an unknown tx_id is ENOENT', async (t) => {
    const { h, me } = world();
    t.equal(h.read(me, '/a', 42), 'ERR:ENOENT');
    t.equal(h.write(me, '/a', 'x', 42), 'ERR:ENOENT');
    t.equal(h.read(h.dom0, '/a'), '1', 'nothing was written');
  });

  t.test('a transaction is gone once ended, whatever the outcome', async (t) => {
    const { h, me, other } = world();
    const tx = h.startTransaction(me);
    h.read(me, '/a', tx);
    h.write(other, '/a', 'x');
    t.equal(end(h, me, tx), 'ERR:EAGAIN');
    t.equal(end(h, me, tx), 'ERR:ENOENT');
    t.equal(h.read(me, '/a', tx), 'ERR:ENOENT');
  });

  t.test('TRANSACTION_END needs T or F and a transaction', async (t) => {
    const { h, me } = world();
    const tx = h.startTransaction(me);
    t.equal(h.try(me, XsType.TRANSACTION_END, nulTerminated('X'), tx), 'ERR:EINVAL');
    t.equal(h.try(me, XsType.TRANSACTION_END, 'T', tx), 'ERR:EINVAL', 'the NUL is required');
    t.equal(h.try(me, XsType.TRANSACTION_END, nulTerminated('T')), 'ERR:ENOENT', 'tx_id 0');
    t.equal(end(h, me, tx), 'OK\0', 'the bad requests did not end it');
  });

  t.test('TRANSACTION_START inside a transaction is EBUSY', async (t) => {
    const { h, me } = world();
    const tx = h.startTransaction(me);
    t.equal(h.try(me, XsType.TRANSACTION_START, '\0', tx), 'ERR:EBUSY');
  });

  t.test('a guest connection may hold 11 open transactions (quota 10, checked with ">")', async (t) => {
    const h = new Harness();
    const guest = h.conn(3);
    const ids = Array.from({ length: 11 }, () => h.startTransaction(guest));
    t.equal(new Set(ids).size, 11);
    t.equal(h.try(guest, XsType.TRANSACTION_START, '\0'), 'ERR:ENOSPC');
    t.equal(h.try(h.conn(3), XsType.TRANSACTION_START, '\0'), '1\0', 'the limit is per connection');
    end(h, guest, ids[0] as number, false);
    t.match(h.try(guest, XsType.TRANSACTION_START, '\0'), /^\d+\0$/, 'ending one makes room');
    const dom0 = h.conn(0);
    for (let i = 0; i < 20; i++) h.startTransaction(dom0);
    t.match(h.try(dom0, XsType.TRANSACTION_START, '\0'), /^\d+\0$/, 'dom0 is not limited');
  });

  t.test('closing the connection or RESET_WATCHES drops its transactions', async (t) => {
    const { h, me } = world();
    const tx = h.startTransaction(me);
    t.equal(h.try(me, XsType.RESET_WATCHES, ''), 'OK\0');
    t.equal(end(h, me, tx), 'ERR:ENOENT');
    h.startTransaction(me);
    closeConnection(h.state, me);
    t.equal(me.transactions.size, 0);
    t.notOk(h.state.connections.has(me));
  });
});
