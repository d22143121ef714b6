/*
 * Request handling of the simulated xenstored's pure core, operation by operation: payload
 * shapes, values, path validation, RM/MKDIR details, GET_DOMAIN_PATH, SET_PERMS parsing and the
 * dispatcher's ENOSYS/EACCES/ENOENT checks.
 * Layer: unit test of agent/sim/xenstored/core.ts (no I/O).
 */
import t from 'tap';
import { errorFrame, handleFrame } from '../../../../agent/sim/xenstored/index.js';
import { Harness, nulTerminated, outcome, request, XsType } from '../helpers.js';

t.test('READ and WRITE', async (t) => {
  t.test('READ returns the raw value without a NUL', async (t) => {
    const h = new Harness();
    t.equal(h.write(h.dom0, '/k', 'value'), 'OK\0');
    const payload = h.ok(h.dom0, XsType.READ, nulTerminated('/k'));
    t.same([...payload], [...Buffer.from('value')]);
  });

  t.test('values are binary and may be empty', async (t) => {
    const h = new Harness();
    const value = Buffer.from([0, 1, 2, 0, 255]);
    t.equal(h.try(h.dom0, XsType.WRITE, Buffer.concat([Buffer.from('/bin\0'), value])), 'OK\0');
    t.same([...h.ok(h.dom0, XsType.READ, nulTerminated('/bin'))], [...value]);
    t.equal(h.write(h.dom0, '/empty', ''), 'OK\0');
    t.equal(h.ok(h.dom0, XsType.READ, nulTerminated('/empty')).length, 0);
  });

  t.test('WRITE creates missing ancestors with empty values', async (t) => {
    const h = new Harness();
    t.equal(h.write(h.dom0, '/x/y/z', 'deep'), 'OK\0');
    t.equal(h.read(h.dom0, '/x'), '');
    t.equal(h.read(h.dom0, '/x/y'), '');
    t.equal(h.try(h.dom0, XsType.DIRECTORY, nulTerminated('/x/y')), 'z\0');
  });

  t.test('WRITE replaces a value and keeps children and permissions', async (t) => {
    const h = new Harness();
    h.write(h.dom0, '/n/child', 'c');
    h.setPerms(h.dom0, '/n', 'r0');
    t.equal(h.write(h.dom0, '/n', 'new'), 'OK\0');
    t.equal(h.read(h.dom0, '/n'), 'new');
    t.equal(h.perms('/n'), 'r0\0');
    t.equal(h.try(h.dom0, XsType.DIRECTORY, nulTerminated('/n')), 'child\0');
  });

  t.test('WRITE needs a NUL after the path', async (t) => {
    const h = new Harness();
    t.equal(h.try(h.dom0, XsType.WRITE, '/k'), 'ERR:EINVAL');
  });

  t.test('single-argument requests need exactly one NUL, at the end', async (t) => {
    const h = new Harness();
    h.write(h.dom0, '/k', 'v');
    t.equal(h.try(h.dom0, XsType.READ, '/k'), 'ERR:EINVAL', 'no NUL');
    t.equal(h.try(h.dom0, XsType.READ, '/k\0\0'), 'ERR:EINVAL', 'two NULs');
    t.equal(h.try(h.dom0, XsType.READ, ''), 'ERR:EINVAL', 'empty payload');
  });
});

t.test('path validation', async (t) => {
  const h = new Harness();
  const invalid: [string, string][] = [
    ['/a//b', 'doubled slash'],
    ['/a/', 'trailing slash'],
    ['', 'empty path'],
    ['/a b', 'a space'],
    ['/a\u00e9', 'non-ASCII'],
    ['@introduceDomain', 'special path for READ'],
    [`rel/${'x'.repeat(2048)}`, 'relative path over 2048 bytes'],
    [`/${'x'.repeat(3072)}`, 'absolute path over 3072 bytes'],
    [`/tool/${'x'.repeat(2100)}`, 'absolute path over 2048 bytes outside a domain home'],
  ];
  for (const [path, why] of invalid) t.equal(h.read(h.dom0, path), 'ERR:EINVAL', why);
  t.equal(h.write(h.dom0, `/local/domain/1/${'x'.repeat(2040)}`, 'v'), 'OK\0', 'the home prefix does not count');
  t.equal(h.read(h.dom0, '/'), '', 'the root is a valid path');
  t.equal(h.write(h.conn(0), 'rel', 'v'), 'OK\0', 'dom0 resolves relative paths too');
  t.equal(h.read(h.dom0, '/local/domain/0/rel'), 'v', 'against /local/domain/0');
});

t.test('MKDIR', async (t) => {
  const h = new Harness();
  h.write(h.dom0, '/m', 'keep');
  t.equal(h.try(h.dom0, XsType.MKDIR, nulTerminated('/m')), 'OK\0');
  t.equal(h.read(h.dom0, '/m'), 'keep', 'an existing value is left alone');
  t.equal(h.try(h.dom0, XsType.MKDIR, nulTerminated('/m/a/b')), 'OK\0');
  t.equal(h.read(h.dom0, '/m/a/b'), '');
  t.equal(h.try(h.dom0, XsType.MKDIR, nulTerminated('/m/')), 'ERR:EINVAL');
});

t.test('RM', async (t) => {
  t.test('removes the whole subtree and the entry in the parent', async (t) => {
    const h = new Harness();
    for (const p of ['/r/a/x', '/r/a/y', '/r/b']) h.write(h.dom0, p, 'v');
    t.equal(h.try(h.dom0, XsType.RM, nulTerminated('/r/a')), 'OK\0');
    for (const p of ['/r/a', '/r/a/x', '/r/a/y']) t.equal(h.read(h.dom0, p), 'ERR:ENOENT', `${p} is gone`);
    t.equal(h.try(h.dom0, XsType.DIRECTORY, nulTerminated('/r')), 'b\0');
    t.equal(h.write(h.dom0, '/r/a', 'again'), 'OK\0', 'and can be created again');
    t.equal(h.try(h.dom0, XsType.DIRECTORY, nulTerminated('/r')), 'b\0a\0');
  });

  t.test('is fine for a missing node with a parent, ENOENT without', async (t) => {
    const h = new Harness();
    h.write(h.dom0, '/r', '');
    t.equal(h.try(h.dom0, XsType.RM, nulTerminated('/r/missing')), 'OK\0');
    t.equal(h.try(h.dom0, XsType.RM, nulTerminated('/r/missing/deeper')), 'ERR:ENOENT');
    t.equal(h.try(h.dom0, XsType.RM, nulTerminated('/')), 'ERR:EINVAL');
  });
});

t.test('SET_PERMS and GET_PERMS', async (t) => {
  const h = new Harness();
  h.write(h.dom0, '/p', '');
  t.equal(h.setPerms(h.dom0, '/p', 'n0', 'r3', 'w4', 'b5'), 'OK\0');
  t.equal(h.perms('/p'), 'n0\0r3\0w4\0b5\0');
  t.equal(h.setPerms(h.dom0, '/p'), 'ERR:EINVAL', 'no permission at all');
  t.equal(h.setPerms(h.dom0, '/p', 'x3'), 'ERR:EINVAL', 'bad letter');
  t.equal(h.setPerms(h.dom0, '/p', 'r70000'), 'ERR:EINVAL', 'domid out of range');
  t.equal(h.setPerms(h.dom0, '/missing', 'n0'), 'ERR:ENOENT');
  t.equal(h.perms('/p'), 'n0\0r3\0w4\0b5\0', 'failed requests changed nothing');
  t.equal(h.setPerms(h.dom0, '@introduceDomain', 'n0', 'r3'), 'OK\0', 'special nodes take permissions');
  t.equal(h.perms('@introduceDomain'), 'n0\0r3\0');
  t.equal(h.perms('@noSuchThing'), 'ERR:ENOENT');
});

t.test('GET_DOMAIN_PATH', async (t) => {
  const h = new Harness();
  const d3 = h.conn(3);
  t.equal(h.try(d3, XsType.GET_DOMAIN_PATH, nulTerminated('3')), '/local/domain/3\0');
  t.equal(h.try(d3, XsType.GET_DOMAIN_PATH, nulTerminated('17')), '/local/domain/17\0', 'any domain, any caller');
  t.equal(h.try(d3, XsType.GET_DOMAIN_PATH, nulTerminated('junk')), '/local/domain/0\0', "C's atoi() reads junk as 0");
  t.equal(h.try(d3, XsType.GET_DOMAIN_PATH, '3'), 'ERR:EINVAL');
});

t.test('dispatch', async (t) => {
  const h = new Harness();
  const d3 = h.conn(3);
  t.equal(h.try(h.dom0, XsType.WATCH_EVENT, nulTerminated('/a', 't')), 'ERR:ENOSYS', 'WATCH_EVENT is not a request');
  t.equal(h.try(h.dom0, XsType.ERROR, nulTerminated('EINVAL')), 'ERR:ENOSYS', 'ERROR is not a request');
  t.equal(h.try(h.dom0, XsType.CONTROL, nulTerminated('check')), 'ERR:ENOSYS', 'CONTROL is not simulated');
  t.equal(h.try(d3, XsType.CONTROL, nulTerminated('check')), 'ERR:EACCES', 'privilege is checked first');
  t.equal(h.try(h.dom0, XsType.RESUME, nulTerminated('3')), 'ERR:ENOSYS');
  t.equal(h.try(h.dom0, XsType.SET_TARGET, nulTerminated('3', '4')), 'ERR:ENOSYS');
  t.equal(h.try(h.dom0, 99, ''), 'ERR:ENOSYS', 'numbers the protocol does not define');
  t.equal(h.try(d3, XsType.INTRODUCE, nulTerminated('4', '0', '0'), 5), 'ERR:EACCES', 'before the tx_id check');
  t.equal(h.try(h.dom0, XsType.GET_DOMAIN_PATH, nulTerminated('4'), 5), 'ERR:ENOENT', 'unknown tx_id');
});

t.test('error frames echo the request header', async (t) => {
  const h = new Harness();
  const req = request(XsType.READ, nulTerminated('/missing'), 0, 0xfffffff0);
  const [reply, ...rest] = handleFrame(h.state, h.dom0, req);
  t.same(rest, []);
  t.same(reply?.frame, errorFrame(req, 'ENOENT'));
  t.equal(outcome(reply?.frame), 'ERR:ENOENT');
  t.same(reply?.frame.payload, Buffer.from('ENOENT\0'));
});
