/*
 * Churn and time on the simulated guest (issue 9). 1,000 hotplug/unplug cycles with the agent
 * running and a udev-helper-style one-shot pass racing it on every plug and unplug: after
 * every cycle the links are exactly what the simulated kernel's slot table says; at the end
 * the process has no more open fds, active handles, listeners or (after GC) heap than after a
 * warm-up, beyond noise. Then the agent runs as its own process and is SIGKILLed at random
 * points during churn: after each restart the links are right and nothing stale is left
 * (links, temporary files). The figures are printed as TAP comments.
 * Takes about 3 minutes on the 2-core CI machine (measured 162 to 171 s in npm run test:fast:
 * the 1,000 cycles about 130 s, the kills about 35 s).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import type { Env } from '../../agent/effects/env.js';
import { reconcile } from '../../agent/reconcile.js';
import { Agent } from '../../agent/service/agent.js';
import type { SimulatedGuest } from '../../agent/sim/guest.js';
import { XenstoreClient } from '../../agent/xenstore/client.js';
import { recordingEnv, startGuest } from '../helpers/sim-guest.js';

const CYCLES = Number(process.env.SOAK_CYCLES ?? 1000);
t.setTimeout(10 * 60_000); // the suite's 120 s per file is too short for a soak (see the header)
const KILLS = 20;

/** The vport links as they are: name -> target. */
async function vportLinks(guest: SimulatedGuest): Promise<Map<string, string>> {
  const dir = join(guest.roots.dev, 'vport');
  const found = new Map<string, string>();
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    found.set(name, await readlink(join(dir, name)).catch(() => '(not a link)'));
  }
  return found;
}

/** The vport links the kernel's slots call for, given the name of each devid. */
function expectedLinks(guest: SimulatedGuest, names: ReadonlyMap<number, string>): Map<string, string> {
  const want = new Map<string, string>();
  for (const [slot, devid] of guest.slotTable()) {
    const name = names.get(devid);
    if (name) want.set(name, `../hvc${slot}`);
  }
  return want;
}

const same = (a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean =>
  a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

/** Polls until the links match the kernel (bounded at 10 s: a hang, not a timing assertion). */
async function linksSettle(guest: SimulatedGuest, names: ReadonlyMap<number, string>): Promise<boolean> {
  for (let i = 0; i < 2000; i++) {
    if (same(await vportLinks(guest), expectedLinks(guest, names))) return true;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return false;
}

/** Node >= 17.3 has process.getActiveResourcesInfo(); the Node 18 types this project builds against lack it. */
type ProcessWithResources = NodeJS.Process & { getActiveResourcesInfo(): string[] };

/** One pass as the udev helper makes it: its own xenstore connection, under the lock. */
async function oneShotPass(env: Env): Promise<void> {
  const client = await XenstoreClient.connect({ transport: env.xenstore });
  try {
    await reconcile(env, client);
  } finally {
    await client.close();
  }
}

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

async function openFds(pid: number | 'self'): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

t.test(`${CYCLES} hotplug/unplug cycles with the agent running and a one-shot pass racing it`, async (t) => {
  const guest = await startGuest(t);
  const names = new Map<number, string>([
    [1, 'soak.boot.one'],
    [2, 'soak.boot.two'],
  ]);
  for (const [devid, name] of names) await guest.plug(devid, name);
  const env = recordingEnv(guest);
  const agent = await Agent.start(env);
  t.teardown(() => agent.stop());
  const oneShot = () => oneShotPass(env);
  /** The lowest of three samples 100 ms apart: a pass or a socat exit in flight is not a leak. */
  const measure = async () => {
    const samples: Array<Record<'fds' | 'handles' | 'listeners' | 'heapKib' | 'rssKib', number>> = [];
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      gc();
      samples.push({
        fds: await openFds('self'),
        handles: (process as ProcessWithResources).getActiveResourcesInfo().length,
        listeners: process.eventNames().reduce((n, e) => n + process.listenerCount(e), 0),
        heapKib: Math.round(process.memoryUsage().heapUsed / 1024),
        rssKib: Math.round(process.memoryUsage().rss / 1024),
      });
    }
    const low = (key: keyof (typeof samples)[number]) => Math.min(...samples.map((s) => s[key]));
    return {
      fds: low('fds'),
      handles: low('handles'),
      listeners: low('listeners'),
      heapKib: low('heapKib'),
      rssKib: low('rssKib'),
    };
  };
  const started = performance.now();
  let before: Awaited<ReturnType<typeof measure>> | undefined;
  let wrong = 0;
  const WARM_UP = 50;
  for (let cycle = 1; cycle <= CYCLES + WARM_UP; cycle++) {
    if (cycle === WARM_UP + 1) before = await measure();
    const devid = 3 + (cycle % 7); // 3..9: every devid the kernel can use, slots reused in turn
    names.set(devid, `soak.cycle.${cycle}`);
    await Promise.all([guest.plug(devid, `soak.cycle.${cycle}`), oneShot()]);
    if (!(await linksSettle(guest, names))) wrong++;
    await Promise.all([guest.unplug(devid), oneShot()]);
    names.delete(devid);
    if (!(await linksSettle(guest, names))) wrong++;
  }
  const after = await measure();
  const seconds = (performance.now() - started) / 1000;
  t.equal(wrong, 0, 'the links matched the kernel after every plug and every unplug');
  t.same(await vportLinks(guest), expectedLinks(guest, names), 'only the boot channels are linked at the end');
  t.comment(`soak: ${CYCLES} cycles (+${WARM_UP} warm-up) in ${seconds.toFixed(1)} s`);
  t.comment(`soak: before ${JSON.stringify(before)}`);
  t.comment(`soak: after  ${JSON.stringify(after)}`);
  if (!before) throw new Error('no measurement before the soak');
  // Noise: a socat child's pipe or a pass in flight in all three samples; a leak would be ~1,000.
  t.ok(after.fds <= before.fds + 2, `no open fd added (${before.fds} -> ${after.fds})`);
  t.ok(after.handles <= before.handles + 2, `no active handle added (${before.handles} -> ${after.handles})`);
  t.ok(after.listeners <= before.listeners, `no process listener added (${before.listeners} -> ${after.listeners})`);
  // 1,000 cycles: a leak of 4 KiB a cycle would add 4 MiB; GC noise is far below that.
  t.ok(after.heapKib - before.heapKib < 4096, `heap after GC: ${before.heapKib} -> ${after.heapKib} KiB`);
  const warnings = env.lines.filter((l) => /^(warn|error):/.test(l));
  for (const line of warnings) t.comment(`soak: ${line}`);
  // Known and harmless, about once in 1,000 cycles: the raw holder's stty meets the hang-up of
  // a channel being unplugged, yet its probe still finds the pty (raw-holder.ts); the next
  // pass releases the tty. Anything else is a finding.
  const hangUpRace = /^warn: channel soak\.cycle\.\d+: cannot keep \S+ in raw mode \(.*Input\/output error\)/;
  t.same(
    warnings.filter((l) => !hangUpRace.test(l)),
    [],
    'no warning or error in the whole soak',
  );
});

/**
 * `xen-channel agent` on the guest as its own process (the TypeScript source, through tap's
 * loader); resolves once it watches xenstore (after its start-up clean-up).
 */
async function spawnAgent(guest: SimulatedGuest, logs: string[]): Promise<ChildProcess> {
  const cli = new URL('../../agent/cli/main.ts', import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    [...process.execArgv, cli, 'agent', '--root', dirname(guest.roots.run), '--no-udev', '--no-socket'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      logs.push(chunk.toString());
      if (log.includes('watching device/console')) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`the agent exited (${code ?? signal}): ${log}`)));
  });
  return child;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Entries left behind by a writer that died: temporary files of the atomic writes and links. */
async function staleEntries(guest: SimulatedGuest): Promise<string[]> {
  const stale: string[] = [];
  for (const dir of [
    join(guest.roots.run, 'xen-channels'),
    ...['vport', 'xen-channel', 'virtio-ports'].map((d) => join(guest.roots.dev, d)),
  ]) {
    for (const entry of await readdir(dir).catch(() => [] as string[])) {
      const writer = Number(/\.(?:tmp|xc)-(\d+)$/.exec(entry)?.[1]);
      if (writer && !alive(writer)) stale.push(join(dir, entry)); // a live agent's write in flight is not stale
    }
  }
  return stale;
}

t.test(
  `the agent SIGKILLed at ${KILLS} random points during churn: after each restart the links are right`,
  async (t) => {
    const guest = await startGuest(t);
    const names = new Map<number, string>([[1, 'kill.boot.one']]);
    await guest.plug(1, 'kill.boot.one');
    const env = recordingEnv(guest);
    const logs: string[] = [];
    let agent = await spawnAgent(guest, logs);
    const stop = (child: ChildProcess) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once('exit', () => resolve()).kill('SIGKILL');
      });
    t.teardown(() => stop(agent));
    t.ok(await linksSettle(guest, names), 'the boot channel is linked');
    // A deterministic sequence of random points (a fixed seed: failures can be replayed).
    let seed = 9;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 1; round <= KILLS; round++) {
      const devid = 2 + (round % 3);
      const churn = names.has(devid)
        ? guest.unplug(devid).then(() => names.delete(devid))
        : guest.plug(devid, `kill.round.${round}`).then(() => names.set(devid, `kill.round.${round}`));
      await new Promise((resolve) => setTimeout(resolve, random() * 60));
      await stop(agent); // somewhere in the middle of the plug or unplug and the agent's pass
      await churn;
      agent = await spawnAgent(guest, logs);
      const right = await linksSettle(guest, names);
      t.ok(right, `round ${round}: links right after the restart`);
      if (!right) {
        t.comment(
          `links ${JSON.stringify([...(await vportLinks(guest))])}, kernel ${JSON.stringify([...guest.slotTable()])}`,
        );
        t.comment(`agent log:\n${logs.join('')}`);
        break;
      }
      t.same(await staleEntries(guest), [], `round ${round}: nothing stale`);
      // The links can be right before the new agent's first pass saved its model; a pass
      // under the lock (as the udev helper would run) makes sure it did, so that the next
      // kill leaves at most one change unseen. Two changes unseen can be the unknowable case
      // of docs/hvc-mapping.md (no links rather than wrong ones), which is not this test's.
      await oneShotPass(env);
    }
    const fds = await openFds(agent.pid as number);
    t.comment(`kill: the last agent has ${fds} open fds`);
  },
);
