import t from 'tap';
import {
  accessFor,
  canRead,
  canWrite,
  formatPermission,
  type Permission,
  parsePermission,
} from '../../../agent/xenstore/perms.js';

t.test('parsePermission and formatPermission', async (t) => {
  const table: Array<[string, Permission | undefined]> = [
    ['n0', { domid: 0, access: 'none' }],
    ['r5', { domid: 5, access: 'read' }],
    ['w12', { domid: 12, access: 'write' }],
    ['b1', { domid: 1, access: 'both' }],
    ['b65535', { domid: 65535, access: 'both' }],
    ['b65536', undefined],
    ['x1', undefined],
    ['r', undefined],
    ['r-1', undefined],
    ['r1 ', undefined],
    ['', undefined],
  ];
  for (const [text, expected] of table) {
    t.same(parsePermission(text), expected, JSON.stringify(text));
    if (expected) t.equal(formatPermission(expected), text, `formats back to ${text}`);
  }
  t.throws(() => formatPermission({ domid: 70000, access: 'read' }), RangeError);
  t.throws(() => formatPermission({ domid: 1, access: 'all' as 'read' }), TypeError);
});

t.test('accessFor: owner, explicit grant, default', async (t) => {
  const perms: Permission[] = [
    { domid: 3, access: 'read' },
    { domid: 0, access: 'none' },
    { domid: 7, access: 'write' },
  ];
  const table: Array<[number, string]> = [
    [3, 'both'],
    [0, 'none'],
    [7, 'write'],
    [9, 'read'],
  ];
  for (const [domid, access] of table) t.equal(accessFor(perms, domid), access, `domain ${domid}`);
  t.equal(accessFor([], 1), 'none', 'an empty list grants nothing');
  t.same(
    (['none', 'read', 'write', 'both'] as const).map((a) => [canRead(a), canWrite(a)]),
    [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ],
  );
});
