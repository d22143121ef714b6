import { createConnection } from 'node:net';
import { dirname } from 'node:path';
import { PassThrough } from 'node:stream';
import t, { type Test } from 'tap';
import { main } from '../../agent/cli/main.js';
import { reconcile } from '../../agent/reconcile.js';
import { XenstoreClient } from '../../agent/xenstore/client.js';
import { recordingEnv, startGuest } from '../helpers/sim-guest.js';

function io() {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const text = (s: PassThrough) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    return () => Buffer.concat(chunks).toString();
  };
  return { streams: { stdin, stdout, stderr }, out: text(stdout), err: text(stderr) };
}

async function guest(t: Test) {
  const g = await startGuest(t);
  const env = recordingEnv(g);
  const client = await XenstoreClient.connect({ transport: env.xenstore });
  t.teardown(() => client.close());
  return { g, root: dirname(g.roots.run), sync: () => reconcile(env, client) };
}

t.test('xen-channel list', async (t) => {
  const { g, root, sync } = await guest(t);
  const empty = io();
  t.equal(await main(['list', '--root', root], empty.streams), 0);
  t.match(empty.out(), /no Xen channels/);
  await g.plug(1, 'org.qemu.guest_agent.0');
  await g.plug(2, 'org.example.app');
  await sync();
  const table = io();
  t.equal(await main(['list', '--root', root], table.streams), 0);
  t.match(
    table.out(),
    /^NAME\s+DEVID\s+TTY\s+STATE\s+LINK OR PROBLEM\norg\.qemu\.guest_agent\.0\s+1\s+\S+\/dev\/hvc1\s+Connected\s+\S+\/dev\/vport\/org\.qemu\.guest_agent\.0\n/,
  );
  const json = io();
  await main(['list', '--json', '--root', root], json.streams);
  t.same(
    JSON.parse(json.out()).map((c: { name: string }) => c.name),
    ['org.qemu.guest_agent.0', 'org.example.app'],
  );
});

t.test('xen-channel wait prints the link once the channel is usable, and times out with exit 5', async (t) => {
  const { g, root, sync } = await guest(t);
  const waiting = io();
  const done = main(['wait', 'org.example.late', '--timeout', '15', '--root', root], waiting.streams);
  await g.plug(1, 'org.example.late');
  await sync();
  t.equal(await done, 0);
  t.equal(waiting.out(), `${g.roots.dev}/vport/org.example.late\n`);
  const late = io();
  t.equal(await main(['wait', 'org.example.never', '--timeout', '0.2', '--root', root], late.streams), 5);
  t.match(late.err(), /^xen-channel: timed out after 200 ms waiting for Xen channel org\.example\.never/);
  const bad = io();
  t.equal(await main(['wait', 'x', '--timeout', 'soon', '--root', root], bad.streams), 2);
});

t.test('xen-channel open bridges stdin/stdout to the channel; a missing channel exits 4', async (t) => {
  const { g, root, sync } = await guest(t);
  await g.plug(1, 'org.example.bridge');
  await sync();
  const dom0 = createConnection(g.socketPath(1));
  await new Promise((resolve) => dom0.once('connect', resolve));
  let atDom0 = '';
  const requestArrived = new Promise<void>((resolve) =>
    dom0.on('data', (c: Buffer) => {
      atDom0 += c.toString();
      if (atDom0.includes('request\n')) resolve();
    }),
  );
  const session = io();
  const done = main(['open', 'org.example.bridge', '--root', root], session.streams);
  session.streams.stdin.write('request\n');
  await requestArrived;
  t.equal(atDom0, 'request\n', 'dom0 got exactly the bytes: no echo, no \\r');
  dom0.write('reply\r\n');
  await new Promise<void>((resolve) => session.streams.stdout.once('data', () => resolve()));
  session.streams.stdin.end();
  t.equal(await done, 0);
  t.equal(session.out(), 'reply\r\n', 'the reply came through untouched');
  dom0.destroy();
  const missing = io();
  t.equal(await main(['open', 'org.example.absent', '--root', root], missing.streams), 4);
  t.match(missing.err(), /no Xen channel named "org\.example\.absent" \(channels present: org\.example\.bridge;/);
});

t.test('status and udev-event work on a simulated guest through --root', async (t) => {
  const { g, root } = await guest(t);
  await g.plug(1, 'org.qemu.guest_agent.0');
  await g.plug(10, 'ten');
  const before = io();
  t.equal(await main(['status', '--root', root], before.streams), 0);
  t.match(
    before.out(),
    /links: made directly\nDEVID\s+NAME\s+STATE\s+TTY\s+LINKS\n1\s+org\.qemu\.guest_agent\.0\s+Connected\s+hvc1\s+/,
  );
  t.match(before.out(), /10\s+ten\s+Initialising\s+-\s+-\n\s+! devid 10 cannot work/);
  const update = io();
  t.equal(await main(['udev-event', '--root', root], update.streams), 0);
  t.match(
    update.err(),
    /<6>channel org\.qemu\.guest_agent\.0 \(devid 1\) is \/dev\/hvc1/,
    'journald priority prefixes',
  );
  const json = io();
  await main(['status', '--json', '--root', root], json.streams);
  t.match(JSON.parse(json.out()), {
    linkMode: 'direct',
    channels: [{ key: '1', links: ['vport/org.qemu.guest_agent.0', String, String] }, { key: '10' }],
  });
});

t.test('udev-event stands aside while the agent runs (its watch covers the change)', async (t) => {
  const { g, root } = await guest(t);
  await g.plug(1, 'org.example.agent');
  const { Agent } = await import('../../agent/service/agent.js');
  const env = recordingEnv(g);
  const agent = await Agent.start(env);
  t.teardown(() => agent.stop());
  const run = io();
  const t0 = performance.now();
  t.equal(await main(['udev-event', '--root', root], run.streams), 0);
  t.ok(performance.now() - t0 < 2000, 'returns at once');
  t.equal(run.err(), '', 'and says nothing at the default level');
  await agent.stop();
  await g.plug(2, 'org.example.later');
  const second = io();
  t.equal(await main(['udev-event', '--root', root], second.streams), 0);
  t.match(second.err(), /channel org\.example\.later \(devid 2\) is \/dev\/hvc2/, 'without the agent it does the work');
});
