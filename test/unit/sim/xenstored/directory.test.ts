/*
 * DIRECTORY and DIRECTORY_PART of the simulated xenstored's pure core: child order, E2BIG for
 * lists over PAYLOAD_MAX, and DIRECTORY_PART chunking (generation, whole entries, maximal chunks,
 * the empty-name end marker) across every offset a client would use.
 * Layer: unit test of agent/sim/xenstored/core.ts (no I/O).
 */
import t from 'tap';
import { PAYLOAD_MAX } from '../../../../agent/xenstore/wire.js';
import { Harness, nulTerminated, XsType } from '../helpers.js';

function bigDirectory(count: number): { h: Harness; names: string[] } {
  const h = new Harness();
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `child-${String(i).padStart(4, '0')}-${'x'.repeat(i % 17)}`;
    names.push(name);
    if (h.try(h.dom0, XsType.MKDIR, nulTerminated(`/big/${name}`)) !== 'OK\0') throw new Error('mkdir failed');
  }
  return { h, names };
}

/** Splits a DIRECTORY_PART reply into its generation and the rest. */
function parsePart(payload: Buffer): { gen: string; rest: Buffer } {
  const nul = payload.indexOf(0);
  return { gen: payload.toString('utf8', 0, nul), rest: payload.subarray(nul + 1) };
}

t.test('DIRECTORY', async (t) => {
  t.test('lists children in creation order, NUL-terminated', async (t) => {
    const h = new Harness();
    for (const name of ['zeta', 'alpha', 'mid']) h.write(h.dom0, `/d/${name}`, '');
    t.equal(h.try(h.dom0, XsType.DIRECTORY, nulTerminated('/d')), 'zeta\0alpha\0mid\0');
  });

  t.test('answers an empty payload for a node without children', async (t) => {
    const h = new Harness();
    h.write(h.dom0, '/leaf', 'v');
    const payload = h.ok(h.dom0, XsType.DIRECTORY, nulTerminated('/leaf'));
    t.equal(payload.length, 0);
  });

  t.test('shows the initial tree', async (t) => {
    const h = new Harness();
    t.equal(h.try(h.dom0, XsType.DIRECTORY, nulTerminated('/')), 'local\0tool\0');
    t.equal(h.try(h.dom0, XsType.DIRECTORY, nulTerminated('/local')), 'domain\0');
    t.equal(h.try(h.dom0, XsType.DIRECTORY, nulTerminated('/tool')), 'xenstored\0');
    t.equal(h.try(h.dom0, XsType.GET_PERMS, nulTerminated('/')), 'n0\0');
    t.equal(h.try(h.dom0, XsType.GET_PERMS, nulTerminated('/local/domain')), 'n0\0');
  });

  t.test('is E2BIG when the list exceeds PAYLOAD_MAX', async (t) => {
    const { h, names } = bigDirectory(300);
    t.ok(names.join('\0').length > PAYLOAD_MAX, 'the list is big enough');
    t.equal(h.try(h.dom0, XsType.DIRECTORY, nulTerminated('/big')), 'ERR:E2BIG');
  });

  t.test('is ENOENT for a missing node', async (t) => {
    const h = new Harness();
    t.equal(h.try(h.dom0, XsType.DIRECTORY, nulTerminated('/missing')), 'ERR:ENOENT');
  });
});

t.test('DIRECTORY_PART', async (t) => {
  t.test('returns the whole list in chunks that a client can join', async (t) => {
    const { h, names } = bigDirectory(300);
    const full = Buffer.from(names.map((n) => `${n}\0`).join(''));
    const chunks: Buffer[] = [];
    let offset = 0;
    let generation: string | undefined;
    for (let round = 0; round < 10; round++) {
      const payload = h.ok(h.dom0, XsType.DIRECTORY_PART, nulTerminated('/big', String(offset)));
      t.ok(payload.length <= PAYLOAD_MAX, `chunk at ${offset} fits in a payload`);
      const { gen, rest } = parsePart(payload);
      generation ??= gen;
      t.equal(gen, generation, 'the generation stays the same while nothing changes');
      const last = rest.length >= 2 && rest[rest.length - 1] === 0 && rest[rest.length - 2] === 0;
      const entries = last ? rest.subarray(0, rest.length - 1) : rest;
      t.equal(entries[entries.length - 1], 0, 'a chunk holds whole entries');
      if (!last) {
        // Maximal: the next entry would not have fitted (send_directory_part()'s rule).
        const next = full.indexOf(0, offset + entries.length) - (offset + entries.length);
        t.ok(entries.length + next >= PAYLOAD_MAX - (gen.length + 1) - 1, `chunk at ${offset} is as long as allowed`);
      }
      chunks.push(entries);
      offset += entries.length;
      if (last) break;
    }
    t.ok(chunks.length >= 2, `needed ${chunks.length} chunks`);
    t.same(Buffer.concat(chunks), full, 'the chunks join into the full list');
  });

  t.test('marks the end of a short list with an empty name', async (t) => {
    const h = new Harness();
    h.write(h.dom0, '/d/a', '');
    h.write(h.dom0, '/d/b', '');
    const { gen, rest } = parsePart(h.ok(h.dom0, XsType.DIRECTORY_PART, nulTerminated('/d', '0')));
    t.match(gen, /^\d+$/);
    t.equal(rest.toString(), 'a\0b\0\0');
    t.equal(
      parsePart(h.ok(h.dom0, XsType.DIRECTORY_PART, nulTerminated('/d', '2'))).rest.toString(),
      'b\0\0',
      'from an entry offset',
    );
  });

  t.test('answers generation and an empty name at or after the end', async (t) => {
    const h = new Harness();
    h.write(h.dom0, '/d/a', '');
    for (const offset of ['2', '3', '999', '-1']) {
      t.equal(
        parsePart(h.ok(h.dom0, XsType.DIRECTORY_PART, nulTerminated('/d', offset))).rest.toString(),
        '\0',
        `offset ${offset}`,
      );
    }
    h.write(h.dom0, '/empty', '');
    t.equal(
      parsePart(h.ok(h.dom0, XsType.DIRECTORY_PART, nulTerminated('/empty', '0'))).rest.toString(),
      '\0',
      'no children',
    );
  });

  t.test('reports a new generation once the children change', async (t) => {
    const h = new Harness();
    h.write(h.dom0, '/d/a', '');
    const before = parsePart(h.ok(h.dom0, XsType.DIRECTORY_PART, nulTerminated('/d', '0'))).gen;
    h.write(h.dom0, '/d/b', '');
    const after = parsePart(h.ok(h.dom0, XsType.DIRECTORY_PART, nulTerminated('/d', '0'))).gen;
    t.not(after, before);
  });

  t.test('needs exactly a path and an offset', async (t) => {
    const h = new Harness();
    t.equal(h.try(h.dom0, XsType.DIRECTORY_PART, nulTerminated('/')), 'ERR:EINVAL');
    t.equal(h.try(h.dom0, XsType.DIRECTORY_PART, nulTerminated('/', '0', '1')), 'ERR:EINVAL');
    t.equal(h.try(h.dom0, XsType.DIRECTORY_PART, nulTerminated('/missing', '0')), 'ERR:ENOENT');
  });
});
