/*
 * Permission rules of the simulated xenstored's pure core, as a table: who may read, write,
 * create, remove and change permissions in which situation, and who owns what gets created.
 * Layer: unit test of agent/sim/xenstored/core.ts (no I/O).
 */
import t from 'tap';
import type { ConnState } from '../../../../agent/sim/xenstored/index.js';
import { Harness, nulTerminated, XsType } from '../helpers.js';

/** A tree where dom0 has set up nodes with typical permissions. */
function setup(): Harness {
  const h = new Harness();
  const d0 = h.dom0;
  const seed = (path: string, value: string, ...perms: string[]): void => {
    if (h.write(d0, path, value) !== 'OK\0') throw new Error(`seeding ${path} failed`);
    if (perms.length > 0 && h.setPerms(d0, path, ...perms) !== 'OK\0') throw new Error(`perms on ${path} failed`);
  };
  seed('/pub', 'pub', 'r0'); // everyone reads
  seed('/priv', 'priv'); // inherits n0 from "/"
  seed('/priv/inner', 'inner', 'n0', 'r3'); // domain 3 reads this, not its parent
  seed('/grant', 'grant', 'n0', 'b5'); // domain 5 may read and write
  seed('/wonly', 'w', 'w0'); // everyone writes, nobody reads
  seed('/give', 'give', 'n0');
  seed('/local/domain/3', '', 'n3'); // domain 3's home, owned by it
  seed('/local/domain/3/own', 'mine', 'n3');
  return h;
}

type Case = [name: string, domid: number, type: number, payload: string | Buffer, expected: string];

const n = (...parts: string[]): Buffer => nulTerminated(...parts);

const cases: Case[] = [
  ['dom0 reads a node nobody else may read', 0, XsType.READ, n('/priv'), 'priv'],
  ['a guest cannot read a node whose default access is none', 3, XsType.READ, n('/priv'), 'ERR:EACCES'],
  ['a guest reads a node whose default access is read', 3, XsType.READ, n('/pub'), 'pub'],
  ['a guest without an explicit grant gets the default', 3, XsType.READ, n('/grant'), 'ERR:EACCES'],
  ['an explicit grant gives read', 5, XsType.READ, n('/grant'), 'grant'],
  ['an explicit grant gives write', 5, XsType.WRITE, '/grant\0new', 'OK\0'],
  ['read access does not give write', 3, XsType.WRITE, '/pub\0x', 'ERR:EACCES'],
  ['write access does not give read', 3, XsType.READ, n('/wonly'), 'ERR:EACCES'],
  ['write access gives write', 3, XsType.WRITE, '/wonly\0x', 'OK\0'],
  ['the owner has full access', 3, XsType.READ, n('/local/domain/3/own'), 'mine'],
  ['a missing node under a readable parent is ENOENT', 3, XsType.READ, n('/pub/missing'), 'ERR:ENOENT'],
  ['a missing node under an unreadable parent is EACCES', 3, XsType.READ, n('/priv/missing'), 'ERR:EACCES'],
  ['a node granted to a guest is readable under an unreadable parent', 3, XsType.READ, n('/priv/inner'), 'inner'],
  ['the nearest existing ancestor decides for deep missing nodes', 3, XsType.READ, n('/priv/inner/a/b'), 'ERR:ENOENT'],
  ['a missing top-level node is EACCES for guests (root is n0)', 3, XsType.READ, n('/nowhere/deep'), 'ERR:EACCES'],
  ['a missing top-level node is ENOENT for dom0', 0, XsType.READ, n('/nowhere/deep'), 'ERR:ENOENT'],
  ['creating needs write on the nearest existing ancestor', 3, XsType.WRITE, '/pub/new\0x', 'ERR:EACCES'],
  ['creating below a writable node makes all missing levels', 3, XsType.WRITE, '/wonly/new/deeper\0x', 'OK\0'],
  ['a guest creates in its own home', 3, XsType.WRITE, '/local/domain/3/data/x\0v', 'OK\0'],
  ['MKDIR of an existing node still needs write', 3, XsType.MKDIR, n('/pub'), 'ERR:EACCES'],
  ['MKDIR of an existing writable node is fine', 3, XsType.MKDIR, n('/wonly'), 'OK\0'],
  ['MKDIR creates in a writable place', 3, XsType.MKDIR, n('/local/domain/3/dir'), 'OK\0'],
  ['RM needs write', 3, XsType.RM, n('/pub'), 'ERR:EACCES'],
  ['RM of a missing node whose parent exists is fine', 3, XsType.RM, n('/local/domain/3/missing'), 'OK\0'],
  [
    'RM of a missing node whose parent is missing is ENOENT',
    3,
    XsType.RM,
    n('/local/domain/3/no/deeper'),
    'ERR:ENOENT',
  ],
  ['RM of a missing node under a read-only parent is EACCES', 3, XsType.RM, n('/pub/missing'), 'ERR:EACCES'],
  ['GET_PERMS needs read', 3, XsType.GET_PERMS, n('/priv'), 'ERR:EACCES'],
  ['GET_PERMS lists the entries', 5, XsType.GET_PERMS, n('/grant'), 'n0\0b5\0'],
  ['DIRECTORY needs read', 3, XsType.DIRECTORY, n('/priv'), 'ERR:EACCES'],
  ['DIRECTORY_PART needs read', 3, XsType.DIRECTORY_PART, n('/priv', '0'), 'ERR:EACCES'],
  ['a guest may not change the owner', 3, XsType.SET_PERMS, n('/local/domain/3/own', 'n5'), 'ERR:EPERM'],
  ['the owner may change the rest', 3, XsType.SET_PERMS, n('/local/domain/3/own', 'n3', 'r5'), 'OK\0'],
  ['write access is not enough for SET_PERMS', 5, XsType.SET_PERMS, n('/grant', 'n0', 'b5'), 'ERR:EACCES'],
  ['dom0 may change the owner', 0, XsType.SET_PERMS, n('/give', 'n7'), 'OK\0'],
  ['a guest reads relative to its home', 3, XsType.READ, n('own'), 'mine'],
  ['special nodes are dom0-only by default', 3, XsType.GET_PERMS, n('@releaseDomain'), 'ERR:EACCES'],
  ['dom0 reads the permissions of special nodes', 0, XsType.GET_PERMS, n('@releaseDomain'), 'n0\0'],
  [
    'a guest may not set more than 5 permissions',
    3,
    XsType.SET_PERMS,
    n('own', 'n3', 'r1', 'r2', 'r4', 'r5', 'r6'),
    'ERR:ENOSPC',
  ],
  ['a guest may not write a node of 2048 bytes or more', 3, XsType.WRITE, `own\0${'x'.repeat(2048)}`, 'ERR:ENOSPC'],
  ['dom0 has no entry-size quota', 0, XsType.WRITE, `/big\0${'x'.repeat(4000)}`, 'OK\0'],
  ['INTRODUCE is for dom0 only', 3, XsType.INTRODUCE, n('4', '0', '0'), 'ERR:EACCES'],
  ['IS_DOMAIN_INTRODUCED is for dom0 only', 3, XsType.IS_DOMAIN_INTRODUCED, n('0'), 'ERR:EACCES'],
  ['RM of "/" is EINVAL even for dom0', 0, XsType.RM, n('/'), 'ERR:EINVAL'],
  ['RM of "/" is EACCES for a guest', 3, XsType.RM, n('/'), 'ERR:EACCES'],
];

t.test('permission rules', async (t) => {
  for (const [name, domid, type, payload, expected] of cases) {
    const h = setup();
    const conn: ConnState = domid === 0 ? h.dom0 : h.conn(domid);
    t.equal(h.try(conn, type, payload), expected, name);
  }
});

t.test('ownership of created nodes', async (t) => {
  t.test('new nodes inherit the parent list with an unprivileged creator as owner', async (t) => {
    const h = setup();
    t.equal(h.write(h.conn(3), '/wonly/new/deeper', 'x'), 'OK\0');
    t.equal(h.perms('/wonly/new'), 'w3\0');
    t.equal(h.perms('/wonly/new/deeper'), 'w3\0');
    t.equal(h.try(h.conn(3), XsType.READ, n('/wonly/new/deeper')), 'x', 'the creator can read what it made');
    t.equal(h.try(h.conn(4), XsType.READ, n('/wonly/new/deeper')), 'ERR:EACCES', 'others keep the default');
  });

  t.test('explicit grants are inherited too', async (t) => {
    const h = setup();
    t.equal(h.write(h.conn(5), '/grant/sub', 'x'), 'OK\0');
    t.equal(h.perms('/grant/sub'), 'n5\0b5\0');
  });

  t.test('nodes dom0 creates keep the parent list unchanged', async (t) => {
    const h = setup();
    t.equal(h.write(h.dom0, '/grant/a/b', 'x'), 'OK\0');
    t.equal(h.perms('/grant/a'), 'n0\0b5\0');
    t.equal(h.perms('/grant/a/b'), 'n0\0b5\0');
  });

  t.test('an owner keeps full access whatever the default says', async (t) => {
    const h = setup();
    const d3 = h.conn(3);
    t.equal(h.setPerms(h.dom0, '/give', 'n3'), 'OK\0');
    t.equal(h.write(d3, '/give', 'changed'), 'OK\0');
    t.equal(h.try(d3, XsType.GET_PERMS, n('/give')), 'n3\0');
  });
});
