import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { listChannels, waitForChannel, watchChannels } from '../../agent/api/channels.js';
import { openChannel } from '../../agent/api/open.js';
import { reconcile } from '../../agent/reconcile.js';
import type { SimulatedGuest } from '../../agent/sim/guest.js';
import { XenstoreClient } from '../../agent/xenstore/client.js';
import { recordingEnv, startGuest } from '../helpers/sim-guest.js';

/** A guest with the agent's reconcile run after each change; returns a function to run it. */
async function guestWithAgent(t: Test) {
  const guest = await startGuest(t);
  const env = recordingEnv(guest);
  const client = await XenstoreClient.connect({ transport: env.xenstore });
  t.teardown(() => client.close());
  const runDir = join(guest.roots.run, 'xen-channels');
  return { guest, runDir, sync: () => reconcile(env, client) };
}

/** Connects to the dom0 socket of `devid`, sends `data`, resolves with the first `expect` bytes received. */
function dom0Exchange(guest: SimulatedGuest, devid: number, data: Buffer, expect: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(guest.socketPath(devid));
    const chunks: Buffer[] = [];
    let length = 0;
    const timer = setTimeout(() => reject(new Error(`dom0 got ${length} of ${expect} bytes`)), 20_000);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      length += c.length;
      if (length >= expect) {
        clearTimeout(timer);
        socket.destroy();
        resolve(Buffer.concat(chunks).subarray(0, expect));
      }
    });
    socket.once('error', reject);
    socket.once('connect', () => socket.write(data));
  });
}

t.test('listChannels and getChannel read what the agent published', async (t) => {
  const { guest, runDir, sync } = await guestWithAgent(t);
  t.same(await listChannels({ runDir }), [], 'nothing before the agent ran');
  await guest.plug(1, 'org.qemu.guest_agent.0');
  await guest.plug(2, 'bad/name');
  await sync();
  const channels = await listChannels({ runDir });
  t.match(channels, [
    {
      name: 'org.qemu.guest_agent.0',
      devid: 1,
      tty: join(guest.roots.dev, 'hvc1'),
      state: 'Connected',
      links: [join(guest.roots.dev, 'vport/org.qemu.guest_agent.0'), String, String],
      problems: [],
    },
  ]);
  t.equal(channels.length, 1, 'a rejected name is not a channel applications can see');
});

t.test('openChannel is binary-safe both ways: every byte value, 1 MiB each way', async (t) => {
  const { guest, runDir, sync } = await guestWithAgent(t);
  await guest.plug(1, 'org.example.echo');
  await sync();
  const channel = await openChannel('org.example.echo', { runDir });
  t.teardown(() => channel.destroy());
  const tty = channel.channel?.tty ?? '';
  const settings = execFileSync('stty', ['-F', tty, '-a']).toString();
  for (const flag of ['-opost', '-echo', '-icanon', '-isig', '-icrnl'])
    t.match(settings, new RegExp(`(^|[\\s;])${flag}([\\s;]|$)`), `tty has ${flag}`);
  // The guest application echoes everything back. (Without backpressure: socat, which plays
  // the dom0 backend here, blocks on writes, and a relay that blocks and an echo that waits for
  // it would stall each other; QEMU's real backend does not block.)
  channel.on('data', (chunk: Buffer) => channel.write(chunk));
  const special = Buffer.from([0x0a, 0x0d, 0x03, 0x04, 0x1a, 0x7f, 0xff, 0x00, 0x11, 0x13, 0x1c]);
  const payload = Buffer.concat([special, Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(1 << 20)]);
  const echoed = await dom0Exchange(guest, 1, payload, payload.length);
  t.equal(echoed.length, payload.length);
  t.ok(echoed.equals(payload), 'the bytes came back unchanged (no echo, no \\r\\n, no signals)');
});

t.test('unplug while open ends the stream with ChannelHangupError', async (t) => {
  const { guest, runDir, sync } = await guestWithAgent(t);
  await guest.plug(1, 'org.example.gone');
  await sync();
  const channel = await openChannel('org.example.gone', { runDir });
  const failed = new Promise<Error>((resolve) => channel.once('error', resolve));
  channel.resume();
  await guest.unplug(1);
  const error = await failed;
  t.match(error, {
    name: 'ChannelHangupError',
    code: 'EHANGUP',
    message: 'Xen channel org.example.gone was unplugged (its tty hung up)',
  });
});

t.test('reopen: after a hang-up the stream carries on when the channel comes back', async (t) => {
  const { guest, runDir, sync } = await guestWithAgent(t);
  await guest.plug(1, 'org.example.back');
  await sync();
  const channel = await openChannel('org.example.back', { runDir, reopen: true });
  t.teardown(() => channel.destroy());
  channel.on('data', () => {});
  const hungUp = new Promise((resolve) => channel.once('hangup', resolve));
  await guest.unplug(1);
  await hungUp;
  await sync();
  const reopened = new Promise((resolve) => channel.once('reopen', resolve));
  await guest.plug(3, 'org.example.back');
  await sync();
  await reopened;
  t.equal(channel.channel?.devid, 3, 'now on the channel with devid 3');
  const got = dom0Exchange(guest, 3, Buffer.alloc(0), 6);
  await new Promise((resolve) => setTimeout(resolve, 50));
  channel.write('again\n');
  t.equal((await got).toString(), 'again\n');
});

t.test('waitForChannel resolves on hotplug and times out saying what it saw', async (t) => {
  const { guest, runDir, sync } = await guestWithAgent(t);
  const waiting = waitForChannel('org.example.late', { runDir, timeoutMs: 15_000 });
  await guest.plug(2, 'org.example.late');
  await sync();
  t.match(await waiting, { name: 'org.example.late', devid: 2, tty: join(guest.roots.dev, 'hvc1') });
  await t.rejects(waitForChannel('org.example.never', { runDir, timeoutMs: 200 }), {
    name: 'TimeoutError',
    message:
      /timed out after 200 ms waiting for Xen channel org\.example\.never; no channel named org\.example\.never appeared \(present: org\.example\.late\)/,
  });
  await t.rejects(waitForChannel('x', { runDir, signal: AbortSignal.abort(new Error('stop')) }), { message: 'stop' });
});

t.test('watchChannels reports added, changed and removed channels', async (t) => {
  const { guest, runDir, sync } = await guestWithAgent(t);
  await guest.plug(1, 'first');
  await sync();
  const watcher = await watchChannels({ runDir });
  const seen: string[] = [];
  const done = (async () => {
    for await (const event of watcher) {
      seen.push(`${event.type} ${event.channel.name}`);
      if (seen.length === 3) break;
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 100));
  await guest.plug(2, 'second');
  await sync();
  await new Promise((resolve) => setTimeout(resolve, 300));
  await guest.unplug(1);
  await sync();
  await done;
  t.same(seen, ['added first', 'added second', 'removed first']);
});

t.test(
  'openChannel explains a missing channel; a duplicated name is published once, for the lowest devid',
  async (t) => {
    const { guest, runDir, sync } = await guestWithAgent(t);
    await guest.plug(2, 'present');
    await guest.plug(1, 'present'); // created later, but the lower devid keeps the name
    await sync();
    await t.rejects(openChannel('absent', { runDir }), {
      name: 'ChannelNotFoundError',
      message: /no Xen channel named "absent" \(channels present: present;/,
    });
    const listed = await listChannels({ runDir });
    t.same(
      listed.map((c) => [c.name, c.devid]),
      [['present', 1]],
    );
    const channel = await openChannel('present', { runDir });
    t.equal(channel.channel?.devid, 1, 'open reaches the channel that keeps the name');
    channel.destroy();
  },
);
