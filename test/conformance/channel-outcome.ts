/*
 * The observable outcome of a portable channel scenario, computed by the same code on the
 * simulated guest (test/integration/portable-scenarios.test.ts) and in a real Xen guest
 * (test/e2e/node/channel-outcome.ts, run by the harness's `observe` step): the links
 * applications find under <dev>/{vport,xen-channel,virtio-ports}, and per console what
 * `xen-channel status --json` says, as short sorted lines so that both runs compare as plain
 * JSON with the expectation written in the scenario. Reads the dev tree (root injected) and
 * a status report; writes nothing. For one scenario, a difference between the two runs is a
 * bug in the simulator or in the agent, never something to paper over here.
 */
import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChannelReport } from '../../agent/reconcile.js';

/** The link directories the agent keeps (its default), in the order shown when they disagree. */
export const OUTCOME_LINK_DIRS = ['vport', 'xen-channel', 'virtio-ports'] as const;

export interface ChannelOutcome {
  /** "<name> -> hvcN", or "<name> -> vport:hvcN xen-channel:- virtio-ports:hvcN" when the directories disagree. */
  readonly links: readonly string[];
  /** "<devid> <name|-> <state> <hvcN|->", then " ! <problem up to its first colon>" per problem; by devid. */
  readonly consoles: readonly string[];
}

/** The part of `xen-channel status --json` an outcome uses (devid, name, slot absent when unknown). */
export interface StatusReport {
  readonly channels: readonly Pick<ChannelReport, 'key' | 'devid' | 'name' | 'state' | 'slot' | 'problems'>[];
}

async function linksIn(dir: string): Promise<Map<string, string>> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  const targets = new Map<string, string>();
  for (const name of names) {
    const target = await readlink(join(dir, name)).catch(() => '(not a link)');
    targets.set(name, /^(?:\.\.\/|\/dev\/)?(hvc\d+)$/.exec(target)?.[1] ?? target);
  }
  return targets;
}

function consoleLine(c: StatusReport['channels'][number]): string {
  const head = `${c.devid ?? c.key} ${c.name ?? '-'} ${c.state} ${c.slot === undefined ? '-' : `hvc${c.slot}`}`;
  return head + c.problems.map((p) => ` ! ${p.split(':')[0]}`).join('');
}

/** The outcome in the guest whose dev tree is `devRoot`, with its `status --json` report. */
export async function channelOutcome(devRoot: string, status: StatusReport): Promise<ChannelOutcome> {
  const dirs = await Promise.all(OUTCOME_LINK_DIRS.map((d) => linksIn(join(devRoot, d))));
  const names = [...new Set(dirs.flatMap((d) => [...d.keys()]))].sort();
  const links = names.map((name) => {
    const targets = dirs.map((d) => d.get(name));
    const [first] = targets;
    if (first !== undefined && targets.every((t) => t === first)) return `${name} -> ${first}`;
    return `${name} -> ${OUTCOME_LINK_DIRS.map((d, i) => `${d}:${targets[i] ?? '-'}`).join(' ')}`;
  });
  const byDevid = (c: StatusReport['channels'][number]): number => c.devid ?? Number.MAX_SAFE_INTEGER;
  const consoles = [...status.channels]
    .sort((a, b) => byDevid(a) - byDevid(b) || a.key.localeCompare(b.key))
    .map(consoleLine);
  return { links, consoles };
}
