/*
 * The xenstore conformance suite: what our client must see from any xenstored, written once
 * against a "xenstore endpoint" and run unchanged by tap against the in-memory xenstored
 * (test/integration/xenstore-conformance.test.ts) and by a standalone runner with Node 18
 * against the real C xenstored in dom0 and through /dev/xen/xenbus in a real guest
 * (test/e2e/node/xs-conformance.ts). Cases use node:assert only, so both runners can use them.
 * Each case works below its own scratch node and removes it afterwards.
 * A difference between the simulator and the real daemon is a bug in the simulator.
 */
import assert from 'node:assert/strict';
import type { Watch, WatchEvent, XenstoreClient } from '../../agent/xenstore/client.js';
import { XenstoreError } from '../../agent/xenstore/errors.js';

export interface ConformanceEndpoint {
  /** Shown in results: "simulator dom0 (unix socket)", "real xenstored via /dev/xen/xenbus". */
  readonly name: string;
  /** Opens a new connection; the suite closes what it opens. */
  connect(): Promise<XenstoreClient>;
  /** A node below which the connection may create and remove freely (relative on a guest device). */
  readonly scratch: string;
  /** dom0 is privileged: it bypasses permissions and quotas. */
  readonly privileged: boolean;
  /** The connection's own domain id. */
  readonly domid: number;
}

export interface ConformanceCase {
  readonly name: string;
  /** Cases that only make sense for one kind of caller. */
  readonly needs?: 'privileged' | 'unprivileged';
  run(ctx: CaseContext): Promise<void>;
}

export interface CaseContext {
  readonly endpoint: ConformanceEndpoint;
  /** This case's own scratch node (exists, empty). */
  readonly dir: string;
  /** A connection opened for this case; more via open(). */
  readonly client: XenstoreClient;
  open(): Promise<XenstoreClient>;
}

async function rejectsWith(promise: Promise<unknown>, code: string, what: string): Promise<void> {
  await assert.rejects(
    promise,
    (err: unknown) => err instanceof XenstoreError && err.code === code,
    `${what}: expected XenstoreError ${code}`,
  );
}

/** Reads events until `predicate` matches one; returns all events read. Bounded by `max`. */
async function eventsUntil(watch: Watch, predicate: (e: WatchEvent) => boolean, max = 50): Promise<WatchEvent[]> {
  const seen: WatchEvent[] = [];
  for (let i = 0; i < max; i++) {
    const { value, done } = await watch.next();
    assert.equal(done, false, `watch on ${watch.path} ended after ${JSON.stringify(seen.map((e) => e.path))}`);
    seen.push(value);
    if (predicate(value)) return seen;
  }
  assert.fail(`no matching event among ${max}: ${JSON.stringify(seen.map((e) => e.path))}`);
}

export const conformanceCases: readonly ConformanceCase[] = [
  {
    name: 'write then read returns the value, binary bytes included',
    async run({ client, dir }) {
      await client.write(`${dir}/text`, 'org.qemu.guest_agent.0');
      assert.equal(await client.read(`${dir}/text`), 'org.qemu.guest_agent.0');
      const binary = Buffer.from([0, 1, 0xff, 0x0a, 0x0d, 0x7f, 0]);
      await client.write(`${dir}/binary`, binary);
      assert.deepEqual(await client.readBuffer(`${dir}/binary`), binary);
      await client.write(`${dir}/empty`, '');
      assert.equal(await client.read(`${dir}/empty`), '');
    },
  },
  {
    name: 'write creates missing parents with empty values',
    async run({ client, dir }) {
      await client.write(`${dir}/a/b/c`, 'deep');
      assert.equal(await client.read(`${dir}/a`), '');
      assert.equal(await client.read(`${dir}/a/b`), '');
      assert.deepEqual(await client.directory(`${dir}/a`), ['b']);
    },
  },
  {
    name: 'reading a missing node fails with ENOENT naming the path',
    async run({ client, dir }) {
      await assert.rejects(client.read(`${dir}/missing`), (err: unknown) => {
        assert.ok(err instanceof XenstoreError);
        assert.equal(err.code, 'ENOENT');
        assert.equal(err.path, `${dir}/missing`);
        assert.equal(err.origin, 'xenstored');
        return true;
      });
    },
  },
  {
    name: 'mkdir creates a node and keeps an existing value',
    async run({ client, dir }) {
      await client.mkdir(`${dir}/m/n`);
      assert.equal(await client.read(`${dir}/m/n`), '');
      await client.write(`${dir}/v`, 'kept');
      await client.mkdir(`${dir}/v`);
      assert.equal(await client.read(`${dir}/v`), 'kept');
    },
  },
  {
    name: 'directory lists the children; an empty node has none',
    async run({ client, dir }) {
      for (const child of ['3', '1', '2']) await client.write(`${dir}/console/${child}/name`, `n${child}`);
      assert.deepEqual((await client.directory(`${dir}/console`)).sort(), ['1', '2', '3']);
      await client.mkdir(`${dir}/leaf`);
      assert.deepEqual(await client.directory(`${dir}/leaf`), []);
      await rejectsWith(client.directory(`${dir}/nope`), 'ENOENT', 'directory of a missing node');
    },
  },
  {
    name: 'rm removes a subtree; a missing node is fine, a missing parent is ENOENT',
    async run({ client, dir }) {
      await client.write(`${dir}/t/x/y`, '1');
      await client.rm(`${dir}/t`);
      await rejectsWith(client.read(`${dir}/t/x/y`), 'ENOENT', 'read below a removed node');
      await rejectsWith(client.read(`${dir}/t`), 'ENOENT', 'read of a removed node');
      await client.rm(`${dir}/never-existed`);
      await rejectsWith(client.rm(`${dir}/no-parent/child`), 'ENOENT', 'rm below a missing parent');
    },
  },
  {
    name: 'permissions: a new node belongs to its creator and set-perms round-trips',
    async run({ client, dir, endpoint }) {
      await client.write(`${dir}/p`, 'x');
      const created = await client.getPerms(`${dir}/p`);
      assert.ok(created.length >= 1);
      if (!endpoint.privileged)
        assert.equal(created[0]?.domid, endpoint.domid, 'an unprivileged creator owns the node');
      const wanted = [
        { domid: endpoint.domid, access: 'none' as const },
        { domid: endpoint.domid === 0 ? 1 : 0, access: 'read' as const },
      ];
      await client.setPerms(`${dir}/p`, wanted);
      assert.deepEqual(await client.getPerms(`${dir}/p`), wanted);
      assert.equal(await client.read(`${dir}/p`), 'x', 'the owner still reads it');
    },
  },
  {
    name: 'permissions: an unprivileged domain may not give its node away',
    needs: 'unprivileged',
    async run({ client, dir }) {
      await client.write(`${dir}/mine`, 'x');
      await rejectsWith(client.setPerms(`${dir}/mine`, [{ domid: 0, access: 'none' }]), 'EPERM', 'changing the owner');
    },
  },
  {
    name: 'permissions: an unprivileged domain cannot read or create outside what it was granted',
    needs: 'unprivileged',
    async run({ client }) {
      await rejectsWith(client.directory('/local/domain/0'), 'EACCES', "listing dom0's home");
      await rejectsWith(client.write('/tool/xen-channels-should-not-exist', 'x'), 'EACCES', 'creating below /tool');
    },
  },
  {
    name: 'a watch fires once at registration with the path as registered',
    async run({ client, dir }) {
      await client.mkdir(`${dir}/w`);
      const watch = await client.watch(`${dir}/w`);
      try {
        const { value } = await watch.next();
        assert.equal(value?.path, `${dir}/w`);
        assert.equal(value?.token, watch.token);
      } finally {
        await watch.close();
      }
    },
  },
  {
    name: 'a watch fires for changes at and below its path, and on removal',
    async run({ client, dir }) {
      await client.mkdir(`${dir}/w`);
      const watch = await client.watch(`${dir}/w`);
      try {
        await eventsUntil(watch, (e) => e.path === `${dir}/w`);
        await client.write(`${dir}/w/1/state`, '4');
        await eventsUntil(watch, (e) => e.path === `${dir}/w/1/state`);
        await client.write(`${dir}/elsewhere`, 'no event for this');
        await client.rm(`${dir}/w/1`);
        const seen = await eventsUntil(watch, (e) => e.path === `${dir}/w/1`);
        assert.ok(!seen.some((e) => e.path.includes('elsewhere')), 'no event for a sibling path');
      } finally {
        await watch.close();
      }
    },
  },
  {
    name: 'removing an ancestor fires a watch below it with the watch path',
    async run({ client, dir }) {
      await client.write(`${dir}/anc/watched/leaf`, '1');
      const watch = await client.watch(`${dir}/anc/watched`);
      try {
        await eventsUntil(watch, (e) => e.path === `${dir}/anc/watched`);
        await client.rm(`${dir}/anc`);
        await eventsUntil(watch, (e) => e.path === `${dir}/anc/watched`);
      } finally {
        await watch.close();
      }
    },
  },
  {
    name: 'another connection sees writes and fires watches',
    async run({ client, dir, open }) {
      const other = await open();
      await client.mkdir(`${dir}/shared`);
      const watch = await client.watch(`${dir}/shared`);
      try {
        await eventsUntil(watch, (e) => e.path === `${dir}/shared`);
        await other.write(`${dir}/shared/from-other`, 'hello');
        await eventsUntil(watch, (e) => e.path === `${dir}/shared/from-other`);
        assert.equal(await client.read(`${dir}/shared/from-other`), 'hello');
      } finally {
        await watch.close();
      }
    },
  },
  {
    name: 'a transaction commits all its writes at once and fires watches at commit',
    async run({ client, dir, open }) {
      const other = await open();
      await client.mkdir(`${dir}/tx`);
      const watch = await other.watch(`${dir}/tx`);
      try {
        await eventsUntil(watch, (e) => e.path === `${dir}/tx`);
        await client.transaction(async (tx) => {
          await tx.write(`${dir}/tx/a`, '1');
          await tx.write(`${dir}/tx/b`, '2');
          assert.equal(await tx.read(`${dir}/tx/a`), '1', 'the transaction sees its own write');
          await rejectsWith(other.read(`${dir}/tx/a`), 'ENOENT', 'another connection before the commit');
        });
        assert.equal(await other.read(`${dir}/tx/a`), '1');
        assert.equal(await other.read(`${dir}/tx/b`), '2');
        await eventsUntil(watch, (e) => e.path === `${dir}/tx/b`);
      } finally {
        await watch.close();
      }
    },
  },
  {
    name: 'an aborted transaction leaves nothing',
    async run({ client, dir }) {
      await assert.rejects(
        client.transaction(async (tx) => {
          await tx.write(`${dir}/aborted`, 'x');
          throw new Error('abort on purpose');
        }),
        /abort on purpose/,
      );
      await rejectsWith(client.read(`${dir}/aborted`), 'ENOENT', 'read after abort');
    },
  },
  {
    name: 'a conflicting change makes the commit fail with EAGAIN; transaction() runs again',
    async run({ client, dir, open }) {
      const other = await open();
      await client.write(`${dir}/counter`, '0');
      let runs = 0;
      await client.transaction(async (tx) => {
        runs++;
        const value = Number(await tx.read(`${dir}/counter`));
        if (runs === 1) await other.write(`${dir}/counter`, '10'); // a conflicting writer, once
        await tx.write(`${dir}/counter`, String(value + 1));
      });
      assert.equal(runs, 2, 'the function ran twice');
      assert.equal(await client.read(`${dir}/counter`), '11', 'the second run saw the other write');
    },
  },
  {
    name: 'get-domain-path names the home of a domain',
    async run({ client, endpoint }) {
      assert.equal(await client.getDomainPath(endpoint.domid), `/local/domain/${endpoint.domid}`);
      assert.equal(await client.getDomainPath(7), '/local/domain/7');
    },
  },
  {
    name: 'a directory too large for one reply is listed in parts',
    needs: 'privileged',
    async run({ client, dir }) {
      const names = Array.from({ length: 300 }, (_, i) => `child-with-a-long-name-${String(i).padStart(4, '0')}`);
      await client.transaction(async (tx) => {
        for (const name of names) await tx.mkdir(`${dir}/big/${name}`);
      });
      assert.deepEqual((await client.directory(`${dir}/big`)).sort(), names);
    },
  },
  {
    name: 'a value filling the whole payload is stored',
    needs: 'privileged',
    async run({ client, dir }) {
      const path = `${dir}/full`;
      const value = Buffer.alloc(4096 - Buffer.byteLength(path) - 1, 0x61);
      await client.write(path, value);
      assert.deepEqual(await client.readBuffer(path), value);
    },
  },
  {
    name: 'a special watch fires once at registration',
    needs: 'privileged',
    async run({ client }) {
      const watch = await client.watch('@releaseDomain');
      try {
        await eventsUntil(watch, (e) => e.path === '@releaseDomain');
      } finally {
        await watch.close();
      }
    },
  },
];

/** Whether `c` applies to `endpoint`. */
export function caseApplies(c: ConformanceCase, endpoint: ConformanceEndpoint): boolean {
  if (c.needs === 'privileged') return endpoint.privileged;
  if (c.needs === 'unprivileged') return !endpoint.privileged;
  return true;
}

/** Runs one case in its own scratch node, closing every connection it opened. */
export async function runCase(endpoint: ConformanceEndpoint, c: ConformanceCase, index: number): Promise<void> {
  const clients: XenstoreClient[] = [];
  const open = async (): Promise<XenstoreClient> => {
    const client = await endpoint.connect();
    clients.push(client);
    return client;
  };
  const client = await open();
  const dir = `${endpoint.scratch}/case${index}`;
  try {
    await client.mkdir(endpoint.scratch);
    await client.rm(dir);
    await client.mkdir(dir);
    await c.run({ endpoint, dir, client, open });
  } finally {
    await client.rm(dir).catch(() => {});
    await Promise.all(clients.map((cl) => cl.close()));
  }
}
