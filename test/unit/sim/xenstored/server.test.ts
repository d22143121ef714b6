/*
 * XenstoredSim over real streams: hand-encoded frames on in-memory connections and on a Unix
 * socket in a test directory, exact reply bytes, events between connections, cleanup when a
 * connection closes, protocol violations, dropConnections(), the Transport, the dom0 helpers and
 * close(). Every test closes the simulator it made.
 * Layer: unit test of agent/sim/xenstored/server.ts (in-memory streams and a Unix socket).
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import t, { type Test } from 'tap';
import { XenstoredSim } from '../../../../agent/sim/index.js';
import { ConnectionClosedError, XenstoreError } from '../../../../agent/xenstore/errors.js';
import { encodeFrame, type Frame } from '../../../../agent/xenstore/wire.js';
import { FrameReader, nulTerminated, request, XsType } from '../helpers.js';

const frame = (type: number, payload: Buffer | string, reqId: number, txId = 0): Buffer =>
  encodeFrame(request(type, payload, txId, reqId));

const text = (f: Frame): string => f.payload.toString('utf8');

/** A u32 in the host byte order the wire uses. */
const hostU32 = (n: number): Buffer =>
  encodeFrame({ type: n, reqId: 0, txId: 0, payload: Buffer.alloc(0) }).subarray(0, 4);

/** Lets pending stream callbacks (nextTick, setImmediate) run; waits for I/O, not for time. */
async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

function newSim(t: Test): XenstoredSim {
  const sim = new XenstoredSim();
  t.teardown(() => sim.close());
  return sim;
}

t.test('in-memory connections', async (t) => {
  t.test('answer hand-encoded requests with exact frames', async (t) => {
    const sim = newSim(t);
    const client = sim.connect({ domid: 0 });
    const reader = new FrameReader(client);
    client.write(frame(XsType.WRITE, '/k\0hello', 0x11223344));
    const reply = await reader.next();
    t.same(
      encodeFrame(reply),
      encodeFrame({ type: XsType.WRITE, reqId: 0x11223344, txId: 0, payload: Buffer.from('OK\0') }),
    );
    client.write(frame(XsType.READ, nulTerminated('/k'), 2));
    t.same(await reader.next(), { type: XsType.READ, reqId: 2, txId: 0, payload: Buffer.from('hello') });
    client.write(frame(XsType.READ, nulTerminated('/nope'), 3));
    t.same(await reader.next(), { type: XsType.ERROR, reqId: 3, txId: 0, payload: Buffer.from('ENOENT\0') });
    client.destroy();
  });

  t.test('handle frames split and merged across writes, answering in order', async (t) => {
    const sim = newSim(t);
    const client = sim.connect({ domid: 0 });
    const reader = new FrameReader(client);
    const bytes = Buffer.concat([
      frame(XsType.WRITE, '/a\x001', 1),
      frame(XsType.WRITE, '/b\x002', 2),
      frame(XsType.READ, nulTerminated('/a'), 3),
      frame(XsType.DIRECTORY, nulTerminated('/'), 4),
    ]);
    for (let i = 0; i < bytes.length; i += 5) client.write(bytes.subarray(i, i + 5));
    const replies = await reader.take(4);
    t.same(
      replies.map((f) => [f.reqId, text(f)]),
      [
        [1, 'OK\0'],
        [2, 'OK\0'],
        [3, '1'],
        [4, 'local\0tool\0a\0b\0'],
      ],
    );
    client.destroy();
  });

  t.test('act as the given domain', async (t) => {
    const sim = newSim(t);
    sim.write('/local/domain/3', '', [{ domid: 3, access: 'none' }]);
    sim.write('/local/domain/3/name', 'guest');
    const guest = sim.connect({ domid: 3 });
    const reader = new FrameReader(guest);
    guest.write(frame(XsType.READ, nulTerminated('name'), 1));
    guest.write(frame(XsType.READ, nulTerminated('/tool'), 2));
    guest.write(frame(XsType.WRITE, 'mine\0x', 3));
    t.same((await reader.take(3)).map(text), ['guest', 'EACCES\0', 'OK\0']);
    t.same(sim.getPerms('/local/domain/3/mine'), [{ domid: 3, access: 'none' }]);
    guest.destroy();
  });

  t.test('deliver watch events to other connections', async (t) => {
    const sim = newSim(t);
    const watcher = sim.connect({ domid: 0 });
    const writer = sim.connect({ domid: 0 });
    const watched = new FrameReader(watcher);
    const written = new FrameReader(writer);
    watcher.write(frame(XsType.WATCH, nulTerminated('/w', 'tok'), 9));
    t.same(
      (await watched.take(2)).map((f) => [f.type, f.reqId, text(f)]),
      [
        [XsType.WATCH, 9, 'OK\0'],
        [XsType.WATCH_EVENT, 0, '/w\0tok\0'],
      ],
    );
    writer.write(frame(XsType.WRITE, '/w/x\0v', 1));
    t.equal(text(await written.next()), 'OK\0');
    t.same(await watched.next(), { type: XsType.WATCH_EVENT, reqId: 0, txId: 0, payload: Buffer.from('/w/x\0tok\0') });
    watcher.destroy();
    writer.destroy();
  });

  t.test('forget a closed connection and its watches', async (t) => {
    const sim = newSim(t);
    const watcher = sim.connect({ domid: 0 });
    const reader = new FrameReader(watcher);
    watcher.write(frame(XsType.WATCH, nulTerminated('/w', 'tok'), 1));
    await reader.take(2);
    t.equal(sim.connectionCount, 1);
    watcher.destroy();
    await reader.closed;
    await settle();
    t.equal(sim.connectionCount, 0, 'the server side closed too');
    const other = sim.connect({ domid: 0 });
    const otherReader = new FrameReader(other);
    other.write(frame(XsType.WATCH, nulTerminated('/w', 'tok'), 1));
    t.same((await otherReader.take(2)).map(text), ['OK\0', '/w\0tok\0']);
    sim.write('/w', 'v');
    t.equal(text(await otherReader.next()), '/w\0tok\0');
    await settle();
    t.equal(otherReader.pending, 0, 'only the live watch fired');
    other.destroy();
  });

  t.test('close the connection on an oversized payload, leaving others alone', async (t) => {
    const sim = newSim(t);
    const bad = sim.connect({ domid: 3 });
    const good = sim.connect({ domid: 3 });
    const badReader = new FrameReader(bad);
    const goodReader = new FrameReader(good);
    const header = frame(XsType.WRITE, '', 1);
    hostU32(4097).copy(header, 12);
    bad.write(header);
    await badReader.closed;
    t.equal(badReader.pending, 0, 'no reply was sent');
    good.write(frame(XsType.GET_DOMAIN_PATH, nulTerminated('3'), 5));
    t.equal(text(await goodReader.next()), '/local/domain/3\0');
    good.destroy();
  });

  t.test('close the connection on a type number the protocol does not define', async (t) => {
    const sim = newSim(t);
    const client = sim.connect({ domid: 0 });
    const reader = new FrameReader(client);
    const bytes = frame(XsType.READ, nulTerminated('/'), 1);
    hostU32(99).copy(bytes, 0);
    client.write(bytes);
    await reader.closed;
    t.equal(sim.connectionCount, 0);
  });

  t.test('dropConnections() ends every client abruptly', async (t) => {
    const sim = newSim(t);
    const a = sim.connect({ domid: 0 });
    const b = sim.connect({ domid: 5 });
    const events: string[] = [];
    for (const [name, s] of [
      ['a', a],
      ['b', b],
    ] as const) {
      s.on('end', () => events.push(`${name} end`));
      s.on('close', () => events.push(`${name} close`));
      s.resume();
    }
    sim.dropConnections();
    t.equal(sim.connectionCount, 0);
    await Promise.all([once(a, 'close'), once(b, 'close')]);
    t.same(events.sort(), ['a close', 'a end', 'b close', 'b end']);
    const again = sim.connect({ domid: 0 });
    const reader = new FrameReader(again);
    again.write(frame(XsType.READ, nulTerminated('/'), 1));
    t.equal((await reader.next()).type, XsType.READ, 'new connections still work');
    again.destroy();
  });

  t.test('reject bad domids', async (t) => {
    const sim = newSim(t);
    t.throws(() => sim.connect({ domid: -1 }), RangeError);
    t.throws(() => sim.connect({ domid: 70000 }), RangeError);
    t.throws(() => sim.connect({ domid: 1.5 }), RangeError);
    t.equal(sim.connectionCount, 0);
  });
});

t.test('Unix socket', async (t) => {
  /**
   * A socket path inside a fresh t.testdir(): relative, after moving into that directory, since
   * the test directory's absolute path can exceed the 107 bytes a Unix socket path may have.
   */
  function socketPath(t: Test, name: string): string {
    t.chdir(t.testdir());
    return name;
  }

  async function dial(path: string): Promise<{ socket: Socket; reader: FrameReader }> {
    const socket = createConnection(path);
    await once(socket, 'connect');
    return { socket, reader: new FrameReader(socket) };
  }

  t.test('serves every accepted connection as the given domain', async (t) => {
    const sim = newSim(t);
    const dom0Path = socketPath(t, 'xenstored.sock');
    const guestPath = 'guest.sock';
    await sim.listen(dom0Path, { domid: 0 });
    await sim.listen(guestPath, { domid: 3 });
    const dom0 = await dial(dom0Path);
    dom0.socket.write(frame(XsType.WRITE, 'rel\0from-dom0', 1));
    dom0.socket.write(frame(XsType.WRITE, '/local/domain/3/x\0y', 2));
    t.same(
      (await dom0.reader.take(2)).map((f) => [f.reqId, text(f)]),
      [
        [1, 'OK\0'],
        [2, 'OK\0'],
      ],
    );
    t.equal(sim.read('/local/domain/0/rel')?.toString(), 'from-dom0', 'relative to /local/domain/0');
    const guest = await dial(guestPath);
    guest.socket.write(frame(XsType.READ, nulTerminated('/local/domain/3/x'), 7));
    t.same(await guest.reader.next(), { type: XsType.ERROR, reqId: 7, txId: 0, payload: Buffer.from('EACCES\0') });
    t.equal(sim.connectionCount, 2);
    dom0.socket.destroy();
    guest.socket.destroy();
  });

  t.test('delivers events between socket and in-memory connections', async (t) => {
    const sim = newSim(t);
    const path = socketPath(t, 'xs.sock');
    await sim.listen(path, { domid: 0 });
    const { socket, reader } = await dial(path);
    socket.write(frame(XsType.WATCH, nulTerminated('/shared', 's'), 1));
    await reader.take(2);
    const mem = sim.connect({ domid: 0 });
    mem.write(frame(XsType.WRITE, '/shared\0v', 1));
    t.same(await reader.next(), { type: XsType.WATCH_EVENT, reqId: 0, txId: 0, payload: Buffer.from('/shared\0s\0') });
    mem.destroy();
    socket.destroy();
  });

  t.test('close() ends clients, stops listening and removes the socket', async (t) => {
    const sim = new XenstoredSim();
    const path = socketPath(t, 'xs.sock');
    await sim.listen(path, { domid: 0 });
    const { socket, reader } = await dial(path);
    const mem = sim.connect({ domid: 0 });
    const memClosed = once(mem, 'close');
    mem.resume();
    await sim.close();
    await reader.closed;
    await memClosed;
    t.notOk(existsSync(path), 'the socket file is gone');
    t.equal(sim.connectionCount, 0);
    t.throws(() => sim.connect({ domid: 0 }), ConnectionClosedError);
    await t.rejects(sim.listen(path, { domid: 0 }), ConnectionClosedError);
    t.ok(socket.destroyed);
  });

  t.test('listen() rejects when the path is taken', async (t) => {
    const sim = newSim(t);
    const path = socketPath(t, 'xs.sock');
    await sim.listen(path, { domid: 0 });
    await t.rejects(sim.listen(path, { domid: 0 }), { code: 'EADDRINUSE' });
  });
});

t.test('transport()', async (t) => {
  t.test('describes itself and connects as the domain', async (t) => {
    const sim = newSim(t);
    const transport = sim.transport({ domid: 3 });
    t.equal(transport.description, 'simulated xenstored (domain 3)');
    t.equal(transport.relativePaths, true);
    t.equal(sim.transport({ domid: 0 }).relativePaths, false, 'dom0 defaults to absolute paths');
    t.equal(sim.transport({ domid: 0, relativePaths: true }).relativePaths, true);
    const duplex: Duplex = await transport.connect();
    const reader = new FrameReader(duplex);
    duplex.write(frame(XsType.GET_DOMAIN_PATH, nulTerminated('3'), 1));
    duplex.write(frame(XsType.WRITE, 'x\0v', 2));
    t.same((await reader.take(2)).map(text), ['/local/domain/3\0', 'EACCES\0']);
    const second = await transport.connect();
    t.not(second, duplex, 'each connect() is a fresh connection');
    t.equal(sim.connectionCount, 2);
    duplex.destroy();
    second.destroy();
  });

  t.test('rejects with the reason of an aborted signal, and after close()', async (t) => {
    const sim = new XenstoredSim();
    const transport = sim.transport({ domid: 3 });
    const controller = new AbortController();
    const reason = new Error('gave up');
    controller.abort(reason);
    await t.rejects(transport.connect(controller.signal), reason);
    t.equal(sim.connectionCount, 0);
    await sim.close();
    await t.rejects(transport.connect(), ConnectionClosedError);
    await t.rejects(transport.connect(), { message: /simulated xenstored \(domain 3\)/ });
  });
});

t.test('dom0 helpers', async (t) => {
  t.test('seed and inspect the tree without the wire', async (t) => {
    const sim = newSim(t);
    sim.write('/tool/a/b', 'text');
    sim.write('/tool/a/bin', Buffer.from([0, 1, 2]));
    sim.mkdir('/tool/a/dir');
    t.equal(sim.read('/tool/a/b')?.toString(), 'text');
    t.same([...(sim.read('/tool/a/bin') ?? [])], [0, 1, 2]);
    t.same(sim.directory('/tool/a'), ['b', 'bin', 'dir']);
    t.same(sim.getPerms('/tool/a'), [{ domid: 0, access: 'none' }]);
    sim.setPerms('/tool/a', [
      { domid: 0, access: 'read' },
      { domid: 4, access: 'both' },
    ]);
    t.same(sim.getPerms('/tool/a'), [
      { domid: 0, access: 'read' },
      { domid: 4, access: 'both' },
    ]);
    sim.rm('/tool/a');
    t.equal(sim.read('/tool/a/b'), undefined);
    t.equal(sim.getPerms('/tool/a'), undefined);
    t.equal(sim.directory('/tool/a'), undefined);
    t.same(sim.directory('/'), ['local', 'tool']);
    t.same(sim.directory('local'), undefined, 'relative paths resolve against /local/domain/0');
  });

  t.test('lists directories of any size', async (t) => {
    const sim = newSim(t);
    for (let i = 0; i < 400; i++) sim.mkdir(`/tool/many/child-${i}-${'x'.repeat(10)}`);
    t.equal(sim.directory('/tool/many')?.length, 400);
  });

  t.test("throw XenstoreError with xenstored's errno", async (t) => {
    const sim = newSim(t);
    t.throws(() => sim.write('/bad//path', 'v'), {
      name: 'XenstoreError',
      code: 'EINVAL',
      op: 'write',
      path: '/bad//path',
    });
    t.throws(() => sim.rm('/no/such'), { code: 'ENOENT' });
    t.throws(() => sim.read('@releaseDomain'), XenstoreError);
    t.throws(() => sim.write('/x', 'v', [{ domid: 70000, access: 'read' }]), RangeError);
    t.equal(sim.read('/x'), undefined, 'a failed write with permissions leaves nothing behind');
    t.throws(() => sim.directory('/a//b'), { code: 'EINVAL' });
  });

  t.test('fire watches like any dom0 client; write with permissions fires once', async (t) => {
    const sim = newSim(t);
    sim.mkdir('/local/domain/3');
    sim.setPerms('/local/domain/3', [{ domid: 3, access: 'none' }]);
    const guest = sim.connect({ domid: 3 });
    const reader = new FrameReader(guest);
    guest.write(frame(XsType.WATCH, nulTerminated('device', 'dev'), 1));
    await reader.take(2);
    sim.write('/local/domain/3/device/console', 'x', [{ domid: 3, access: 'read' }]);
    sim.rm('/local/domain/3/device');
    t.same((await reader.take(2)).map(text), ['device/console\0dev\0', 'device\0dev\0']);
    await settle();
    t.equal(reader.pending, 0, 'exactly one event per helper call');
    guest.destroy();
  });

  t.test('introduceDomain() and releaseDomain() fire the special watches', async (t) => {
    const sim = newSim(t);
    const dom0 = sim.connect({ domid: 0 });
    const guest = sim.connect({ domid: 3 });
    const dom0Reader = new FrameReader(dom0);
    const guestReader = new FrameReader(guest);
    dom0.write(frame(XsType.WATCH, nulTerminated('@introduceDomain', 'in'), 1));
    dom0.write(frame(XsType.WATCH, nulTerminated('@releaseDomain', 'out'), 2));
    guest.write(frame(XsType.WATCH, nulTerminated('@releaseDomain', 'g'), 3));
    await dom0Reader.take(4);
    await guestReader.take(2);
    sim.introduceDomain(3);
    sim.releaseDomain(3);
    t.same((await dom0Reader.take(2)).map(text), ['@introduceDomain\0in\0', '@releaseDomain\0out\0']);
    sim.setPerms('@releaseDomain', [
      { domid: 0, access: 'none' },
      { domid: 3, access: 'read' },
    ]);
    // Like xenstored, changing the special node's permissions fires its watches too.
    t.equal(text(await guestReader.next()), '@releaseDomain\0g\0');
    t.equal(text(await dom0Reader.next()), '@releaseDomain\0out\0');
    sim.releaseDomain(3);
    t.equal(text(await guestReader.next()), '@releaseDomain\0g\0', 'the guest hears releases once allowed to');
    t.equal(text(await dom0Reader.next()), '@releaseDomain\0out\0');
    await settle();
    t.equal(guestReader.pending, 0);
    t.throws(() => sim.introduceDomain(-5), RangeError);
    dom0.destroy();
    guest.destroy();
  });
});
