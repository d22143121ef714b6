/*
 * createDuplexPair(): bytes cross in both directions, asynchronously and in order; end() and
 * destroy() reach the peer as 'end' and 'close'; a full reader holds the writer back.
 * Layer: unit test of agent/sim/duplex-pair.ts (in-memory streams only).
 */
import { once } from 'node:events';
import t from 'tap';
import { createDuplexPair } from '../../../agent/sim/duplex-pair.js';

function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return once(stream, 'end').then(() => Buffer.concat(chunks));
}

t.test('createDuplexPair', async (t) => {
  t.test('carries bytes both ways, in order, never synchronously', async (t) => {
    const [a, b] = createDuplexPair();
    const fromA = collect(b);
    const fromB = collect(a);
    const closed = Promise.all([once(a, 'close'), once(b, 'close')]);
    let seen = false;
    b.once('data', () => {
      seen = true;
    });
    a.write('one ');
    a.write(Buffer.from('two'));
    t.equal(seen, false, 'nothing arrives during write()');
    b.end('back');
    a.end();
    t.equal((await fromA).toString(), 'one two');
    t.equal((await fromB).toString(), 'back');
    await closed;
    t.ok(a.destroyed && b.destroyed, 'both ends close once both sides ended');
  });

  t.test('end() on one side ends the other (allowHalfOpen is false, as for sockets)', async (t) => {
    const [a, b] = createDuplexPair();
    b.resume();
    a.resume();
    const closed = Promise.all([once(a, 'close'), once(b, 'close')]);
    const ended = once(b, 'end');
    a.end();
    await ended;
    await closed;
    t.ok(b.writableEnded, 'the peer ended its own side too');
  });

  t.test('destroy() reaches the peer as end then close', async (t) => {
    const [a, b] = createDuplexPair();
    const events: string[] = [];
    b.on('end', () => events.push('end'));
    b.on('close', () => events.push('close'));
    b.resume();
    a.write('last words');
    a.destroy();
    await once(b, 'close');
    t.same(events, ['end', 'close']);
  });

  t.test('writes to a gone peer are dropped without error', async (t) => {
    const [a, b] = createDuplexPair();
    b.destroy();
    a.on('error', (error) => t.fail(`unexpected error ${error.message}`));
    a.resume();
    await once(a, 'end');
    t.ok(true, 'the survivor saw the end');
  });

  t.test('holds writes back while the reader does not read', async (t) => {
    const [a, b] = createDuplexPair();
    const chunk = Buffer.alloc(64 * 1024, 1);
    let finished = 0;
    for (let i = 0; i < 8; i++) a.write(chunk, () => finished++);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    t.ok(finished < 8, `only ${finished} of 8 writes completed while nobody reads`);
    const received = collect(b);
    a.end();
    t.equal((await received).length, 8 * chunk.length, 'everything arrives once read');
    t.equal(finished, 8);
  });
});
