/*
 * The simulator's runner of portable scenarios: every test/e2e/scenarios/*.json marked
 * "portable": true runs here on the simulated guest with the real agent, and unchanged on real
 * Xen through the e2e harness (test/e2e/dom0/lib/steps.mjs). Both compare each `observe` step
 * with the same expectation, computed by the same code (test/conformance/channel-outcome.ts),
 * so a scenario passing on both sides gives identical names and outcomes. A step outside the
 * portable vocabulary fails the scenario here, so the file cannot drift from what both run.
 * Format: test/e2e/README.md, "Portable scenarios". Each scenario gets its own guest and agent.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Agent } from '../../agent/service/agent.js';
import type { SimulatedGuest } from '../../agent/sim/guest.js';
import { type ChannelOutcome, channelOutcome } from '../conformance/channel-outcome.js';
import { guestToDom0, recordingEnv, startGuest } from '../helpers/sim-guest.js';

const SCENARIOS = new URL('../e2e/scenarios/', import.meta.url).pathname;
/** How long an `observe` step waits for the outcome to settle, as the harness's default. */
const OBSERVE_LIMIT_MS = 60_000;

type Step = Record<string, unknown> & { name?: string };
interface Scenario {
  readonly description: string;
  readonly portable?: boolean;
  readonly channels: readonly { readonly name: string }[];
  readonly steps: readonly Step[];
}

interface Run {
  /** The scenario's test: assertions and teardown. */
  readonly t: Test;
  readonly guest: SimulatedGuest;
  /** devid of each plugged channel name, for write-link. */
  readonly devids: Map<string, number>;
}

const sameOutcome = (a: ChannelOutcome, b: ChannelOutcome): boolean => JSON.stringify(a) === JSON.stringify(b);

async function plug(arg: Record<string, unknown>, run: Run): Promise<void> {
  const devid = Number(arg.devid);
  const name = String(arg.name);
  await run.guest.plug(devid, name, { waitForState: arg.state === undefined ? 4 : Number(arg.state) });
  run.devids.set(name, devid);
}

/** The portable vocabulary on the simulator: each action does what its harness step does on real Xen. */
const ACTIONS: Record<string, (arg: Record<string, unknown>, run: Run, label: string) => Promise<void>> = {
  async 'start-agent'(_arg, run) {
    const agent = await Agent.start(recordingEnv(run.guest));
    run.t.teardown(() => agent.stop());
  },
  plug,
  async unplug(arg, run) {
    await run.guest.unplug(Number(arg.devid));
    for (const [name, devid] of run.devids) if (devid === Number(arg.devid)) run.devids.delete(name);
  },
  async observe(arg, run, label) {
    run.t.same(Object.keys(arg).sort(), ['channels', 'links'], `${label}: observe takes links and channels`);
    const want: ChannelOutcome = { links: arg.links as string[], channels: arg.channels as string[] };
    const deadline = Date.now() + OBSERVE_LIMIT_MS;
    let got = await channelOutcome(run.guest.roots);
    while (!sameOutcome(got, want) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      got = await channelOutcome(run.guest.roots);
    }
    run.t.same(got, want, `${label}: the outcome is the expected one`);
  },
  async 'write-link'(arg, run, label) {
    const name = String(arg.name);
    // `devid`: the channel expected behind the link when several were plugged with the name.
    const devid = arg.devid === undefined ? run.devids.get(name) : Number(arg.devid);
    if (devid === undefined) throw new Error(`write-link: no plugged channel named ${name}`);
    const line = `written to /dev/vport/${name}`;
    const got = await guestToDom0(run.guest, join(run.guest.roots.dev, 'vport', name), devid, line);
    run.t.match(got, `${line}\n`, `${label}: the dom0 socket of devid ${devid} received the line`);
  },
};

const files = readdirSync(SCENARIOS)
  .filter((f) => f.endsWith('.json'))
  .sort();
const portable = files.flatMap((file) => {
  const scenario = JSON.parse(readFileSync(join(SCENARIOS, file), 'utf8')) as Scenario;
  return scenario.portable ? [{ name: file.replace(/\.json$/, ''), scenario }] : [];
});

t.ok(portable.length >= 2, `portable scenarios found in test/e2e/scenarios: ${portable.map((p) => p.name).join(', ')}`);

for (const { name, scenario } of portable) {
  t.test(`portable scenario ${name} on the simulated guest`, async (t) => {
    const run: Run = { t, guest: await startGuest(t), devids: new Map() };
    // The boot channels: devids 1, 2, ... in order, present before the agent starts.
    for (const [i, channel] of scenario.channels.entries()) await plug({ devid: i + 1, name: channel.name }, run);
    for (const [i, step] of scenario.steps.entries()) {
      const actions = Object.keys(step).filter((k) => k !== 'name' && k !== 'timeout');
      const [action] = actions;
      const perform = action === undefined ? undefined : ACTIONS[action];
      if (actions.length !== 1 || action === undefined || !perform) {
        t.fail(`step ${i + 1} is not in the portable vocabulary: ${JSON.stringify(step)}`);
        return;
      }
      await perform(step[action] as Record<string, unknown>, run, `step ${i + 1} (${step.name ?? action})`);
    }
  });
}
