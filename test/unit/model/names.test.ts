import t from 'tap';
import { type ChannelName, resolveDuplicates, showBytes, validateName } from '../../../agent/model/names.js';
import { hostileNames, validNames } from '../../fixtures/names.js';

t.test('validateName accepts the names real channels use', async (t) => {
  for (const name of validNames) {
    const verdict = validateName(Buffer.from(name));
    t.same(verdict, { ok: true, name }, name.slice(0, 40));
  }
});

t.test('validateName rejects hostile and odd names with a reason, never rewriting them', async (t) => {
  for (const [what, raw, reason] of hostileNames) {
    const verdict = validateName(raw);
    t.equal(verdict.ok, false, `${what} is rejected`);
    if (!verdict.ok) {
      t.match(verdict.reason, reason, `${what}: ${verdict.reason}`);
      const printable = [...verdict.shown].every((c) => (c >= ' ' && c <= '~' && c !== '"') || c === '…');
      t.ok(printable, `${what}: shown safely as ${verdict.shown.slice(0, 40)}`);
    }
  }
});

t.test('showBytes escapes and bounds untrusted bytes', async (t) => {
  t.equal(showBytes(Buffer.from('ok\n\\')), 'ok\\x0a\\x5c');
  t.equal(showBytes(Buffer.from('abcdef'), 3), 'abc… (6 bytes)');
});

t.test('resolveDuplicates: the lowest devid keeps a shared name', async (t) => {
  const n = (s: string) => s as ChannelName;
  const { winners, conflicts } = resolveDuplicates([
    { devid: 5, name: n('dup') },
    { devid: 2, name: n('dup') },
    { devid: 3, name: n('solo') },
    { devid: 7, name: n('dup') },
  ]);
  t.same([...winners].sort(), [2, 3]);
  t.same(conflicts, [{ name: 'dup', winner: 2, losers: [5, 7] }]);
});
