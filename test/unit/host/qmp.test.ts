import type { Duplex } from 'node:stream';
import t from 'tap';
import { QmpClient, QmpCommandError, QmpProtocolError } from '../../../agent/host/qmp.js';
import { createDuplexPair } from '../../../agent/sim/duplex-pair.js';
import { manualClock } from '../../helpers/manual-clock.js';

const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": []}}\r\n';

/** A scripted QEMU: the test reads each request line and writes whatever bytes it wants. */
function scriptedQemu(): {
  client: Duplex;
  next(): Promise<Record<string, unknown>>;
  send(text: string): void;
  peer: Duplex;
} {
  const [client, peer] = createDuplexPair();
  const lines: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  let buffer = '';
  peer.setEncoding('utf8');
  peer.on('data', (chunk: string) => {
    buffer += chunk;
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      const waiter = waiters.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    }
  });
  return {
    client,
    peer,
    next: async () => {
      const line = lines.shift() ?? (await new Promise<string>((resolve) => waiters.push(resolve)));
      return JSON.parse(line) as Record<string, unknown>;
    },
    send: (text) => {
      peer.write(text);
    },
  };
}

async function negotiated(q: ReturnType<typeof scriptedQemu>, clock = manualClock()): Promise<QmpClient> {
  q.send(GREETING);
  const opening = QmpClient.open(q.client, { clock, where: 'QMP test' });
  const caps = await q.next();
  q.send(`{"return": {}, "id": ${caps.id}}\r\n`);
  return opening;
}

t.test('QmpClient', async (t) => {
  t.test('waits for the greeting, negotiates capabilities, then runs commands in order', async (t) => {
    const q = scriptedQemu();
    const opening = QmpClient.open(q.client, { clock: manualClock(), where: 'QMP test' });
    q.send(GREETING);
    const caps = await q.next();
    t.equal(caps.execute, 'qmp_capabilities');
    q.send(`{"return": {}, "id": ${caps.id}}\r\n`);
    const qmp = await opening;
    const adding = qmp.execute('chardev-add', { id: 'x', backend: { type: 'pty', data: {} } });
    const add = await q.next();
    t.same(add.arguments, { id: 'x', backend: { type: 'pty', data: {} } });
    q.send(`{"return": {"pty": "/dev/pts/3"}, "id": ${add.id}}\r\n`);
    t.same(await adding, { pty: '/dev/pts/3' });
    qmp.close();
  });

  t.test('skips events, before and between replies', async (t) => {
    const q = scriptedQemu();
    const qmp = await negotiated(q);
    const listing = qmp.execute('query-chardev');
    const req = await q.next();
    t.notOk('arguments' in req, 'no arguments member when there are none');
    q.send('{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "CHR_EVENT"}\r\n');
    q.send(
      `{"return": [{"label": "libxl-channel1", "filename": "unix:/run/a.sock,server=on", "frontend-open": true}], "id": ${req.id}}\r\n`,
    );
    t.same(await listing, [{ label: 'libxl-channel1', filename: 'unix:/run/a.sock,server=on', 'frontend-open': true }]);
    qmp.close();
  });

  t.test('decodes a reply split at every offset', async (t) => {
    for (const split of [1, 5, 17, 40]) {
      const q = scriptedQemu();
      const qmp = await negotiated(q);
      const running = qmp.execute('query-chardev');
      const req = await q.next();
      const reply = `{"event": "X", "data": {}}\r\n{"return": [], "id": ${req.id}}\r\n`;
      for (let i = 0; i < reply.length; i += split) q.send(reply.slice(i, i + split));
      t.same(await running, [], `chunks of ${split}`);
      qmp.close();
    }
  });

  t.test("rejects with QmpCommandError carrying QEMU's class and description", async (t) => {
    const q = scriptedQemu();
    const qmp = await negotiated(q);
    const removing = qmp.execute('chardev-remove', { id: 'nope' });
    const req = await q.next();
    q.send(`{"error": {"class": "GenericError", "desc": "Chardev 'nope' not found"}, "id": ${req.id}}\r\n`);
    const error = await removing.catch((e: unknown) => e);
    t.type(error, QmpCommandError);
    t.match(error, { command: 'chardev-remove', errorClass: 'GenericError', desc: "Chardev 'nope' not found" });
    t.match((error as Error).message, /QEMU \(QMP test\) refused chardev-remove: Chardev 'nope' not found/);
    // The session stays usable after a command error.
    const again = qmp.execute('query-chardev');
    const req2 = await q.next();
    q.send(`{"return": [], "id": ${req2.id}}\r\n`);
    t.same(await again, []);
    qmp.close();
  });

  t.test('a reply nobody asked for, or garbage, is a protocol error that ends the session', async (t) => {
    for (const bad of ['{"return": {}, "id": 999}\r\n', 'not json\r\n', '[1,2]\r\n']) {
      const q = scriptedQemu();
      const qmp = await negotiated(q);
      const running = qmp.execute('query-chardev');
      await q.next();
      q.send(bad);
      await t.rejects(running, QmpProtocolError, JSON.stringify(bad));
      await t.rejects(qmp.execute('query-chardev'), QmpProtocolError, 'later commands fail at once');
    }
  });

  t.test('QEMU hanging up rejects the pending command', async (t) => {
    const q = scriptedQemu();
    const qmp = await negotiated(q);
    const running = qmp.execute('query-chardev');
    await q.next();
    q.peer.destroy();
    await t.rejects(running, { name: 'QmpProtocolError', message: /closed the connection/ });
  });

  t.test('no greeting in time is a protocol error', async (t) => {
    const q = scriptedQemu();
    const clock = manualClock();
    const opening = QmpClient.open(q.client, { clock, where: 'QMP test', timeoutMs: 500 });
    await new Promise((resolve) => setImmediate(resolve));
    t.same(clock.pending, [500]);
    clock.fire();
    await t.rejects(opening, { name: 'QmpProtocolError', message: /no answer to the QMP greeting within 500 ms/ });
    t.same(clock.pending, [], 'no timer left');
  });

  t.test('a command that gets no answer times out and leaves no timer', async (t) => {
    const q = scriptedQemu();
    const clock = manualClock();
    const qmp = await negotiated(q, clock);
    t.same(clock.pending, [], 'the negotiation timer is gone');
    const running = qmp.execute('query-chardev');
    await q.next();
    clock.fire();
    await t.rejects(running, { message: /no answer to query-chardev within 10000 ms/ });
    t.same(clock.pending, []);
  });

  t.test('refuses to overlap commands', async (t) => {
    const q = scriptedQemu();
    const qmp = await negotiated(q);
    const first = qmp.execute('query-chardev');
    await t.rejects(qmp.execute('query-chardev'), /sent while query-chardev is pending/);
    const req = await q.next();
    q.send(`{"return": [], "id": ${req.id}}\r\n`);
    await first;
    qmp.close();
  });
});
