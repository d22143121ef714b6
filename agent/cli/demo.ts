/*
 * `xen-channel demo`: the whole agent on a simulated guest, for a machine without Xen. It
 * builds a temporary guest (in-memory xenstored, sysfs and dev trees, a pty per channel
 * bridged to a dom0-side socket), runs the real agent against it through the injected roots,
 * and tells what happens: channels at boot are named, bytes written to /dev/vport/<name>
 * reach the dom0 socket of that channel, a hot-plugged channel is named, an unplugged one
 * loses its links. Exit 0 when every step worked, 1 with the failing step otherwise.
 * --keep leaves the guest running (until Ctrl-C) for `xen-channel status --root DIR`.
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Logger } from '../effects/env.js';
import type { ReconcileResult } from '../reconcile.js';
import { Agent } from '../service/agent.js';
import { SimulatedGuest, simEnv } from '../sim/guest.js';
import { formatStatus } from './channels.js';
import { EXIT, UsageError } from './usage.js';

const indent = (text: string): string => `${text.trimEnd().replace(/^/gm, '   ')}\n`;

export const demoHelp = `  demo [--keep]                        the agent on a simulated guest (no Xen needed)
`;

/** Waits for the agent's next reconcile that satisfies `predicate` (bounded). */
function settled(agent: Agent, predicate: (r: ReconcileResult) => boolean, what: string): Promise<ReconcileResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the agent did not report ${what} within 15 s`)), 15_000);
    agent.on('reconciled', (r) => {
      if (predicate(r)) {
        clearTimeout(timer);
        resolve(r);
      }
    });
  });
}

/** Writes a line into the guest tty `path` and returns what the dom0 socket `socket` received. */
async function throughChannel(path: string, socket: string, text: string): Promise<string> {
  const conn = createConnection(socket);
  await new Promise<void>((resolve, reject) => conn.once('connect', resolve).once('error', reject));
  let got = '';
  const received = new Promise<void>((resolve) =>
    conn.on('data', (chunk) => {
      got += chunk.toString('latin1');
      if (got.includes(text)) resolve();
    }),
  );
  const tty = await open(path, 'w');
  await tty.write(`${text}\n`);
  await tty.close();
  const timeout = new Promise<void>((resolve) => setTimeout(resolve, 5000).unref());
  await Promise.race([received, timeout]);
  conn.destroy();
  return got;
}

export async function runDemo(argv: readonly string[], out: NodeJS.WritableStream): Promise<number> {
  let keep: boolean;
  try {
    keep = parseArgs({ args: [...argv], options: { keep: { type: 'boolean' } } }).values.keep ?? false;
  } catch (err) {
    throw new UsageError(`demo: ${(err as Error).message}`);
  }
  const say = (text: string): void => {
    out.write(`${text}\n`);
  };
  const root = await mkdtemp(join(tmpdir(), 'xen-channels-demo-'));
  const agentLog: Logger = { log: (level, message) => say(`    agent ${level}: ${message}`) };
  let guest: SimulatedGuest | undefined;
  let agent: Agent | undefined;
  let step = 'start the simulated guest';
  try {
    say(`1. A simulated Xen guest in ${root}: its kernel gives each channel a /dev/hvcN, as Linux hvc_xen does.`);
    guest = await SimulatedGuest.start({ root });
    step = 'plug the boot channels';
    await guest.plug(1, 'org.qemu.guest_agent.0');
    await guest.plug(2, 'org.example.app');
    say('   dom0 created two channels: devid 1 org.qemu.guest_agent.0, devid 2 org.example.app');
    step = 'start the agent';
    const env = simEnv(guest, { log: agentLog });
    const named = (r: ReconcileResult, name: string) => r.channels.some((c) => c.name === name && c.links.length > 0);
    const agentStarted = Agent.start(env);
    agent = await agentStarted;
    const boot = await settled(
      agent,
      (r) => named(r, 'org.qemu.guest_agent.0') && named(r, 'org.example.app'),
      'the boot channels',
    );
    say('2. The agent read the names from xenstore and linked each tty:');
    out.write(indent(formatStatus(boot.channels, env)));

    step = 'send bytes through /dev/vport/org.example.app';
    const got = await throughChannel(
      join(guest.roots.dev, 'vport', 'org.example.app'),
      guest.socketPath(2),
      'hello from the guest',
    );
    if (!got.includes('hello from the guest')) throw new Error(`dom0 received ${JSON.stringify(got)}`);
    say(
      '3. An application wrote "hello from the guest" to /dev/vport/org.example.app; the dom0 socket of devid 2 got it.',
    );

    step = 'hot-plug a third channel';
    const hot = settled(agent, (r) => named(r, 'org.example.hotplug'), 'the hot-plugged channel');
    await guest.plug(3, 'org.example.hotplug');
    const afterPlug = await hot;
    const slot = afterPlug.channels.find((c) => c.name === 'org.example.hotplug')?.slot;
    say(
      `4. dom0 hot-plugged devid 3 org.example.hotplug; the agent linked /dev/vport/org.example.hotplug -> hvc${slot}.`,
    );

    step = 'unplug devid 1';
    const gone = settled(agent, (r) => !r.channels.some((c) => c.key === '1'), 'the unplugged channel');
    await guest.unplug(1);
    const final = await gone;
    for (const name of ['org.example.app', 'org.example.hotplug']) {
      if (!named(final, name)) throw new Error(`${name} lost its links`);
    }
    say('5. dom0 unplugged devid 1 (graceful Closing); its links are gone. Final state:');
    out.write(indent(formatStatus(final.channels, env)));
    say('Demo finished: every step worked.');
    if (keep) {
      say(
        `The simulated guest keeps running in ${root}. In another shell try: xen-channel status --root ${root}, or list, or open org.example.app with the same --root. Ctrl-C ends it.`,
      );
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
    return EXIT.ok;
  } catch (err) {
    say(`Demo failed at step "${step}": ${(err as Error).message}`);
    return EXIT.failed;
  } finally {
    await agent?.stop();
    await guest?.close();
    await rm(root, { recursive: true, force: true });
  }
}
