import { execFileSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { XenstoreClient } from '../../../../agent/xenstore/client.js';
import { XenbusDeviceTransport } from '../../../../agent/xenstore/transports/xenbus-device.js';
import { shortDir } from '../../../helpers/short-dir.js';

// A FIFO opened read-write behaves like the xenbus device where it matters here: a read
// blocks until bytes arrive, and every byte written comes back, so a request is read back as
// its own "reply" (same type and req_id).
function fifo(dir: string, name: string): string {
  const path = join(dir, name);
  execFileSync('mkfifo', [path]);
  return path;
}

/** How many of this process's descriptors point at `path`. */
function descriptorsOn(path: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // closed between the listing and the readlink
    }
  }).length;
}

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error(`still waiting for ${what}`);
}

t.test('XenbusDeviceTransport', async (t) => {
  t.test('carries whole messages both ways through the device file', async (t) => {
    const dir = shortDir(t);
    const client = await XenstoreClient.connect({ transport: new XenbusDeviceTransport(fifo(dir, 'xenbus')) });
    t.teardown(() => client.close());
    t.equal(client.relativePaths, true, 'the device takes relative paths');
    t.equal(await client.read('device/console'), 'device/console\0', 'the request came back as its own reply');
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => client.read(`data/n${i}`)));
    t.same(
      many,
      Array.from({ length: 50 }, (_, i) => `data/n${i}\0`),
      '50 requests in flight are matched',
    );
  });

  t.test('pending reads do not occupy the libuv threadpool', async (t) => {
    const dir = shortDir(t);
    // More idle connections than the threadpool has threads (4): each keeps a read pending.
    const clients = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        XenstoreClient.connect({ transport: new XenbusDeviceTransport(fifo(dir, `x${i}`)) }),
      ),
    );
    t.teardown(() => Promise.all(clients.map((c) => c.close())));
    // With reads on the threadpool these would never complete; give them a bound to fail on.
    const stats = Promise.all(Array.from({ length: 16 }, () => stat(dir)));
    const bound = new Promise<'starved'>((resolve) => setTimeout(() => resolve('starved'), 10_000).unref());
    const outcome = await Promise.race([stats.then(() => 'done' as const), bound]);
    t.equal(outcome, 'done', 'file-system work completes while six device reads are pending');
    t.equal(await clients[5]?.read('still/works'), 'still/works\0', 'the connections still work');
  });

  t.test('close stops the reader thread and releases the file descriptor', async (t) => {
    const dir = shortDir(t);
    const path = fifo(dir, 'xenbus');
    const client = await XenstoreClient.connect({ transport: new XenbusDeviceTransport(path) });
    await client.read('warm/up');
    t.equal(descriptorsOn(path), 1, 'the device is open once');
    await client.close();
    await until('the device fd to be closed', () => descriptorsOn(path) === 0);
    t.equal(descriptorsOn(path), 0, 'no descriptor left behind');
  });

  t.test('explains a missing device and honours an aborted signal', async (t) => {
    const dir = shortDir(t);
    await t.rejects(new XenbusDeviceTransport(join(dir, 'none')).connect(), {
      name: 'XenstoreUnavailableError',
      message: /cannot open .*none: it does not exist: is this a Xen guest/,
    });
    await t.rejects(new XenbusDeviceTransport(fifo(dir, 'x')).connect(AbortSignal.abort(new Error('stop'))), {
      message: 'stop',
    });
  });
});
