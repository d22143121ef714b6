import t from 'tap';
import { checkPath, isPathWithin, joinPath } from '../../../agent/xenstore/paths.js';

const device = { allowRelative: true, allowSpecial: false };
const socket = { allowRelative: false, allowSpecial: false };
const watch = { allowRelative: true, allowSpecial: true };

t.test('checkPath', async (t) => {
  const accepted: Array<[string, typeof device, string]> = [
    ['/', socket, 'absolute'],
    ['/local/domain/3/device/console/1/name', socket, 'absolute'],
    ['device/console', device, 'relative'],
    ['@releaseDomain', watch, 'special'],
    ['a-b_c@d', device, 'relative'],
    [`/${'a'.repeat(3071)}`, socket, 'absolute'],
    ['a'.repeat(2048), device, 'relative'],
  ];
  for (const [path, rules, kind] of accepted)
    t.equal(checkPath(path, 'read', rules), kind, `${path.slice(0, 40)} is ${kind}`);

  const rejected: Array<[string, typeof device, string, RegExp]> = [
    ['', device, 'EINVAL', /empty path/],
    ['device/console/', device, 'EINVAL', /trailing slash/],
    ['/a//b', socket, 'EINVAL', /doubled slash/],
    ['/a b', socket, 'EINVAL', /only letters/],
    ['/a.b', socket, 'EINVAL', /only letters/],
    ['/a\0b', socket, 'EINVAL', /only letters/],
    ['/é', socket, 'EINVAL', /only letters/],
    ['device/console', socket, 'EINVAL', /relative paths need the guest xenbus device/],
    ['@releaseDomain', device, 'EINVAL', /special paths are only valid/],
    ['@release/Domain', watch, 'EINVAL', /no slash/],
    [`/${'a'.repeat(3072)}`, socket, 'E2BIG', /3072 bytes/],
    ['a'.repeat(2049), device, 'E2BIG', /2048 bytes/],
  ];
  for (const [path, rules, code, message] of rejected) {
    t.throws(
      () => checkPath(path, 'read', rules),
      { name: 'XenstoreError', code, origin: 'client', message },
      `rejects ${JSON.stringify(path.slice(0, 30))}`,
    );
  }
  t.throws(() => checkPath(3 as unknown as string, 'read', device), TypeError);
});

t.test('isPathWithin and joinPath', async (t) => {
  const table: Array<[string, string, boolean]> = [
    ['/a/b', '/a', true],
    ['/a', '/a', true],
    ['/ab', '/a', false],
    ['/a', '/a/b', false],
    ['/anything', '/', true],
    ['device/console/1/state', 'device/console', true],
  ];
  for (const [path, ancestor, expected] of table)
    t.equal(isPathWithin(path, ancestor), expected, `${path} within ${ancestor}`);
  t.equal(joinPath('/', 'local'), '/local');
  t.equal(joinPath('/local', 'domain'), '/local/domain');
  t.equal(joinPath('device', 'console'), 'device/console');
});
