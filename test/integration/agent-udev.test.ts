import { readFile, writeFile } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { reconcile, rulesPath } from '../../agent/reconcile.js';
import { XenstoreClient } from '../../agent/xenstore/client.js';
import { fakeUdev } from '../helpers/fake-udev.js';
import { linkTarget, recordingEnv, startGuest } from '../helpers/sim-guest.js';

async function setup(t: Test) {
  const guest = await startGuest(t);
  const base = recordingEnv(guest);
  const udev = fakeUdev(guest.roots, rulesPath(base));
  const env = Object.assign(base, { exec: udev, linkMode: 'udev' as const });
  const client = await XenstoreClient.connect({ transport: env.xenstore });
  t.teardown(() => client.close());
  return { guest, env, udev, client };
}

t.test('udev mode: rules file, reload, trigger exactly the changed ttys, settle, verified links', async (t) => {
  const { guest, env, udev, client } = await setup(t);
  await guest.plug(1, 'org.qemu.guest_agent.0');
  await guest.plug(2, 'org.example.b');
  await reconcile(env, client);
  t.same(udev.calls, [
    'udevadm control --reload',
    `udevadm trigger --action=change ${guest.roots.sys}/class/tty/hvc1 ${guest.roots.sys}/class/tty/hvc2`,
    'udevadm settle --timeout=10',
  ]);
  t.match(
    await readFile(rulesPath(env), 'utf8'),
    /KERNEL=="hvc1", ENV\{XEN_CHANNEL_NAME\}="org\.qemu\.guest_agent\.0"/,
  );
  t.equal(await linkTarget(guest, 'virtio-ports/org.qemu.guest_agent.0'), '../hvc1');

  udev.calls.length = 0;
  await reconcile(env, client);
  t.same(udev.calls, [], 'nothing changed: no udevadm at all');

  await guest.unplug(1);
  await reconcile(env, client);
  t.same(udev.calls, [
    'udevadm control --reload',
    `udevadm trigger --action=change ${guest.roots.sys}/class/tty/hvc1`,
    'udevadm settle --timeout=10',
  ]);
  t.equal(await linkTarget(guest, 'vport/org.qemu.guest_agent.0'), undefined, 'udev dropped the link');
  t.equal(await linkTarget(guest, 'vport/org.example.b'), '../hvc2');
});

t.test('as a udev RUN program it does not settle (that would wait for its own event)', async (t) => {
  const { guest, env, udev, client } = await setup(t);
  await guest.plug(1, 'a');
  await reconcile(env, client, { fromUdev: true });
  t.same(
    udev.calls.map((c) => c.split(' ')[1]),
    ['control', 'trigger'],
  );
});

t.test('a failing udevadm leaves the old rules in place and the next run retries', async (t) => {
  const { guest, env, udev, client } = await setup(t);
  await guest.plug(1, 'a');
  await reconcile(env, client);
  const good = await readFile(rulesPath(env), 'utf8');
  await guest.plug(2, 'b');
  udev.failNext('trigger', 1);
  await t.rejects(reconcile(env, client), {
    name: 'ExecError',
    message: /udevadm trigger .* exited with 1: udevadm trigger: simulated failure; udev could not re-trigger/,
  });
  t.equal(await readFile(rulesPath(env), 'utf8'), good, 'the previous rules are back');
  t.equal(await linkTarget(guest, 'vport/a'), '../hvc1', 'existing links untouched');
  await reconcile(env, client);
  t.equal(await linkTarget(guest, 'vport/b'), '../hvc2', 'the retry applies the change');
});

t.test('no udevadm at all gives an error that says what to do', async (t) => {
  const { guest, env, client } = await setup(t);
  await guest.plug(1, 'a');
  const noPrograms = Object.assign(env, {
    exec: { run: () => Promise.reject(Object.assign(new Error('spawn udevadm ENOENT'), { code: 'ENOENT' })) },
  });
  await t.rejects(reconcile(noPrograms, client), {
    name: 'ExecError',
    message: /is udev installed\? \(or run with --no-udev\)/,
  });
});

t.test('a rules directory that cannot be written loses nothing', async (t) => {
  const { guest, env, client } = await setup(t);
  await guest.plug(1, 'a');
  await reconcile(env, client);
  await guest.plug(2, 'b');
  // The rules path's directory is replaced by a file: every write fails (like a read-only /run).
  const { rm } = await import('node:fs/promises');
  const dir = rulesPath(env).replace(/\/[^/]+$/, '');
  await rm(dir, { recursive: true });
  await writeFile(dir, 'not a directory');
  await t.rejects(reconcile(env, client), {
    name: 'FileEffectError',
    message: /cannot (read|write) .*61-xen-channels-links\.rules: ENOTDIR/,
  });
  t.equal(await linkTarget(guest, 'vport/a'), '../hvc1', 'links made before stay');
});
