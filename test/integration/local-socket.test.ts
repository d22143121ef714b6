import { stat } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { reconcile } from '../../agent/reconcile.js';
import { LocalSocketServer } from '../../agent/service/local-socket.js';
import { XenstoreClient } from '../../agent/xenstore/client.js';
import { recordingEnv, startGuest } from '../helpers/sim-guest.js';

/** A line-oriented client: send(obj) and next() for the next reply line, parsed. */
async function client(t: Test, path: string) {
  const socket: Socket = createConnection(path);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  t.teardown(() => socket.destroy());
  const lines: string[] = [];
  const waiters: Array<(l: string) => void> = [];
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    for (let i = buffered.indexOf('\n'); i !== -1; i = buffered.indexOf('\n')) {
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  return {
    raw: (text: string) => socket.write(text),
    send: (request: unknown) => socket.write(`${JSON.stringify(request)}\n`),
    next: async (): Promise<Record<string, unknown>> =>
      JSON.parse(lines.shift() ?? (await new Promise<string>((resolve) => waiters.push(resolve)))),
  };
}

async function setup(t: Test) {
  const guest = await startGuest(t);
  const env = recordingEnv(guest);
  const xs = await XenstoreClient.connect({ transport: env.xenstore });
  t.teardown(() => xs.close());
  const runDir = join(guest.roots.run, 'xen-channels');
  const path = join(runDir, 'api.sock');
  const server = await LocalSocketServer.start({ path, runDir });
  t.teardown(() => server.close());
  return { guest, path, sync: () => reconcile(env, xs) };
}

t.test('the local socket answers list, resolve and errors, and stays usable after a bad line', async (t) => {
  const { guest, path, sync } = await setup(t);
  t.equal((await stat(path)).mode & 0o777, 0o600, 'root only by default');
  await guest.plug(1, 'org.qemu.guest_agent.0');
  await sync();
  const c = await client(t, path);
  c.send({ op: 'list', id: 1 });
  t.match(await c.next(), { id: 1, ok: true, channels: [{ name: 'org.qemu.guest_agent.0', devid: 1 }] });
  c.send({ op: 'resolve', name: 'org.qemu.guest_agent.0' });
  t.match(await c.next(), {
    ok: true,
    path: join(guest.roots.dev, 'vport/org.qemu.guest_agent.0'),
    channel: { tty: join(guest.roots.dev, 'hvc1') },
  });
  c.send({ op: 'resolve', name: 'nope', id: 'x' });
  t.match(await c.next(), {
    id: 'x',
    ok: false,
    error: { code: 'ENOCHANNEL', message: /no Xen channel named "nope"/ },
  });
  c.raw('this is not json\n');
  t.match(await c.next(), { ok: false, error: { code: 'EBADREQUEST', message: /one JSON object/ } });
  c.send({ op: 'frobnicate' });
  t.match(await c.next(), {
    ok: false,
    error: { code: 'EBADREQUEST', message: /unknown op "frobnicate"; ops: list, resolve, wait, subscribe/ },
  });
  c.send({ op: 'resolve', name: 42 });
  t.match(await c.next(), { ok: false, error: { code: 'EBADREQUEST', message: /"name" must be a string/ } });
  c.send({ op: 'list' });
  t.match(await c.next(), { ok: true }, 'still answering');
});

t.test('a client that shuts its side after the request still gets the reply (echo ... | socat)', async (t) => {
  const { guest, path, sync } = await setup(t);
  await guest.plug(1, 'org.example.half');
  await sync();
  const socket = createConnection(path);
  await new Promise((resolve) => socket.once('connect', resolve));
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    text += chunk;
  });
  const closed = new Promise((resolve) => socket.once('close', resolve));
  socket.end(`${JSON.stringify({ op: 'resolve', name: 'org.example.half' })}\n`);
  await closed;
  t.match(
    JSON.parse(text),
    { ok: true, channel: { name: 'org.example.half' } },
    'the reply came, then the server closed',
  );
});

t.test('wait answers once the channel is hot-plugged, or with ETIMEDOUT', async (t) => {
  const { guest, path, sync } = await setup(t);
  const c = await client(t, path);
  c.send({ op: 'wait', name: 'org.example.late', timeoutMs: 15_000, id: 7 });
  await new Promise((resolve) => setTimeout(resolve, 100));
  await guest.plug(2, 'org.example.late');
  await sync();
  t.match(await c.next(), { id: 7, ok: true, channel: { name: 'org.example.late', devid: 2 } });
  c.send({ op: 'wait', name: 'org.example.never', timeoutMs: 100 });
  t.match(await c.next(), {
    ok: false,
    error: { code: 'ETIMEDOUT', message: /no channel named org\.example\.never appeared/ },
  });
});

t.test('subscribe streams added and removed events', async (t) => {
  const { guest, path, sync } = await setup(t);
  const c = await client(t, path);
  c.send({ op: 'subscribe', id: 's' });
  t.match(await c.next(), { id: 's', ok: true, subscribed: true });
  await guest.plug(1, 'org.example.sub');
  await sync();
  t.match(await c.next(), { id: 's', event: 'added', channel: { name: 'org.example.sub' } });
  await guest.unplug(1);
  await sync();
  t.match(await c.next(), { id: 's', event: 'removed', channel: { name: 'org.example.sub' } });
});

t.test('a group can be given access', async (t) => {
  const guest = await startGuest(t);
  const runDir = join(guest.roots.run, 'xen-channels');
  const server = await LocalSocketServer.start({ path: join(runDir, 'grp.sock'), runDir, gid: 4 });
  t.teardown(() => server.close());
  const st = await stat(join(runDir, 'grp.sock'));
  t.equal(st.mode & 0o777, 0o660);
  t.equal(st.gid, 4);
});
