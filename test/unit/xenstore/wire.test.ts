import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { ProtocolError } from '../../../agent/xenstore/errors.js';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  firstString,
  HEADER_SIZE,
  nulTerminated,
  PAYLOAD_MAX,
  splitAtFirstNul,
  splitNulStrings,
  typeName,
  XsType,
} from '../../../agent/xenstore/wire.js';

const fixtureDir = new URL('../../fixtures/wire/', import.meta.url);

function loadFixture(name: string): { bytes: Buffer; expected: Frame } {
  const text = readFileSync(new URL(name, fixtureDir), 'utf8');
  const [meta, ...hexLines] = text.trim().split('\n');
  const fields = JSON.parse((meta ?? '').replace(/^# /, '')) as {
    type: number;
    reqId: number;
    txId: number;
    payloadHex: string;
  };
  return {
    bytes: Buffer.from(hexLines.join(''), 'hex'),
    expected: {
      type: fields.type,
      reqId: fields.reqId,
      txId: fields.txId,
      payload: Buffer.from(fields.payloadHex, 'hex'),
    },
  };
}

function decodeAll(chunks: Buffer[]): Frame[] {
  const decoder = new FrameDecoder();
  return chunks.flatMap((c) => decoder.push(c));
}

const validTypes = Object.values(XsType);

t.test('golden frames', async (t) => {
  const names = readdirSync(fixtureDir).filter((n) => n.endsWith('.hex'));
  t.ok(names.length >= 10, 'fixtures are present');
  for (const name of names) {
    t.test(name, async (t) => {
      const { bytes, expected } = loadFixture(name);
      t.same(decodeAll([bytes]), [expected], 'decodes whole');
      t.same(decodeAll([...bytes].map((b) => Buffer.from([b]))), [expected], 'decodes byte by byte');
      for (let cut = 0; cut <= bytes.length; cut++) {
        const frames = decodeAll([bytes.subarray(0, cut), bytes.subarray(cut)]);
        if (frames.length !== 1 || !frames[0]?.payload.equals(expected.payload)) {
          t.fail(`split at ${cut} decoded differently`);
        }
      }
      t.ok(encodeFrame(expected).equals(bytes), 'encode(decode(x)) equals x');
    });
  }
});

t.test('FrameDecoder', async (t) => {
  t.test('rejects a header announcing more than PAYLOAD_MAX and stays failed', async (t) => {
    const decoder = new FrameDecoder();
    const header = Buffer.alloc(HEADER_SIZE);
    header.writeUInt32LE(XsType.READ, 0);
    header.writeUInt32LE(PAYLOAD_MAX + 1, 12);
    t.throws(() => decoder.push(header), ProtocolError);
    t.equal(decoder.buffered, 0, 'holds nothing after the error');
    t.throws(() => decoder.push(Buffer.from('more')), ProtocolError, 'later input is refused too');
  });

  t.test('rejects an undefined message type', async (t) => {
    const header = Buffer.alloc(HEADER_SIZE);
    header.writeUInt32LE(20, 0); // XS_RESTRICT, removed from the protocol
    t.throws(() => new FrameDecoder().push(header), {
      name: 'ProtocolError',
      code: 'EPROTO',
      message: /unknown message type 20/,
    });
  });

  t.test('returns frames completed so far and keeps the remainder', async (t) => {
    const a = encodeFrame({ type: XsType.READ, reqId: 1, txId: 0, payload: Buffer.from('x') });
    const b = encodeFrame({ type: XsType.WRITE, reqId: 2, txId: 0, payload: Buffer.from('yy') });
    const decoder = new FrameDecoder();
    const first = decoder.push(Buffer.concat([a, b.subarray(0, 5)]));
    t.equal(first.length, 1);
    t.equal(decoder.buffered, 5);
    const second = decoder.push(b.subarray(5));
    t.same(
      second.map((f) => f.reqId),
      [2],
    );
    t.equal(decoder.buffered, 0);
  });

  t.test('any split or merge of a message stream gives the same messages (property)', async (t) => {
    const frameArb = fc.record({
      type: fc.constantFrom(...validTypes),
      reqId: fc.nat({ max: 0xffffffff }),
      txId: fc.nat({ max: 0xffffffff }),
      payload: fc.uint8Array({ maxLength: PAYLOAD_MAX }).map((u) => Buffer.from(u)),
    });
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cuts) => {
        const stream = Buffer.concat(frames.map(encodeFrame));
        const offsets = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((x, y) => x - y);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const o of [...offsets, stream.length]) {
          chunks.push(stream.subarray(prev, o));
          prev = o;
        }
        const decoded = decodeAll(chunks);
        return (
          decoded.length === frames.length &&
          decoded.every(
            (d, i) =>
              d.type === frames[i]?.type &&
              d.reqId === frames[i]?.reqId &&
              d.txId === frames[i]?.txId &&
              d.payload.equals(frames[i]?.payload ?? Buffer.alloc(1)),
          )
        );
      }),
      { numRuns: 300 },
    );
    t.pass('300 random streams decoded identically');
  });

  t.test('garbage gives frames or a ProtocolError, never another error, with bounded memory (property)', async (t) => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 6000 }), { maxLength: 10 }), (chunks) => {
        const decoder = new FrameDecoder();
        for (const chunk of chunks) {
          try {
            decoder.push(Buffer.from(chunk));
          } catch (err) {
            if (!(err instanceof ProtocolError)) throw err;
            return true;
          }
          if (decoder.buffered > HEADER_SIZE + PAYLOAD_MAX) return false;
        }
        return true;
      }),
      { numRuns: 500 },
    );
    t.pass('500 garbage streams handled');
  });
});

t.test('encodeFrame', async (t) => {
  t.throws(() => encodeFrame({ type: XsType.WRITE, reqId: 1, txId: 0, payload: Buffer.alloc(PAYLOAD_MAX + 1) }), {
    name: 'RangeError',
    message: /at most 4096 bytes, got 4097/,
  });
  t.throws(() => encodeFrame({ type: XsType.READ, reqId: -1, txId: 0, payload: Buffer.alloc(0) }), RangeError);
  t.throws(() => encodeFrame({ type: XsType.READ, reqId: 1, txId: 2 ** 32, payload: Buffer.alloc(0) }), RangeError);
  t.throws(() => encodeFrame({ type: XsType.READ, reqId: 1.5, txId: 0, payload: Buffer.alloc(0) }), RangeError);
});

t.test('payload helpers', async (t) => {
  const table: Array<[string, Buffer, string[]]> = [
    ['empty payload', Buffer.alloc(0), []],
    ['one string', Buffer.from('a\0'), ['a']],
    ['several', Buffer.from('1\x002\x0010\0'), ['1', '2', '10']],
    ['missing final NUL', Buffer.from('a\0b'), ['a', 'b']],
    ['empty name in the middle', Buffer.from('a\0\0'), ['a', '']],
  ];
  for (const [what, payload, expected] of table) t.same(splitNulStrings(payload), expected, what);
  t.same(nulTerminated('a', 'bc'), Buffer.from('a\0bc\0'));
  t.equal(firstString(Buffer.from('/local/domain/3\0junk')), '/local/domain/3');
  t.equal(firstString(Buffer.from('no-nul')), 'no-nul');
  const split = splitAtFirstNul(Buffer.from('p/q\0v\0w'));
  t.equal(split?.[0], 'p/q');
  t.same(split?.[1], Buffer.from('v\0w'));
  t.equal(splitAtFirstNul(Buffer.from('nonul')), undefined);
  t.equal(typeName(22), 'DIRECTORY_PART');
  t.equal(typeName(20), undefined);
});
