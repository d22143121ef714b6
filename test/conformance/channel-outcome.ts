/*
 * The observable outcome of a portable channel scenario, computed by the same code on the
 * simulated guest (test/integration/portable-scenarios.test.ts) and in a real Xen guest
 * (test/e2e/node/channel-outcome.ts, run by the harness's `observe` step): the links
 * applications find under <dev>/{vport,xen-channel,virtio-ports}, and the channel list the
 * agent publishes for them (<run>/xen-channels/channels.json: name, devid, state, tty,
 * problems), as short sorted lines so that both runs compare as plain JSON with the
 * expectation written in the scenario. Reads files only (roots injected); no xenstore, so
 * observing adds no load to the guest's xenbus. For one scenario, a difference between the
 * two runs is a bug in the simulator or in the agent, never something to paper over here.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PUBLISHED_FILE, parsePublished } from '../../agent/api/published.js';

/** The link directories the agent keeps (its default), in the order shown when they disagree. */
export const OUTCOME_LINK_DIRS = ['vport', 'xen-channel', 'virtio-ports'] as const;

export interface ChannelOutcome {
  /** "<name> -> hvcN", or "<name> -> vport:hvcN xen-channel:- virtio-ports:hvcN" when the directories disagree. */
  readonly links: readonly string[];
  /** "<devid> <name> <state> <hvcN|->", then " ! <problem up to its first colon>" per problem; by devid. */
  readonly channels: readonly string[];
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

async function publishedText(runRoot: string): Promise<string | undefined> {
  return readFile(join(runRoot, 'xen-channels', PUBLISHED_FILE), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/** The outcome in the guest whose dev and run trees are `roots.dev` and `roots.run`. */
export async function channelOutcome(roots: { readonly dev: string; readonly run: string }): Promise<ChannelOutcome> {
  const dirs = await Promise.all(OUTCOME_LINK_DIRS.map((d) => linksIn(join(roots.dev, d))));
  const names = [...new Set(dirs.flatMap((d) => [...d.keys()]))].sort();
  const links = names.map((name) => {
    const targets = dirs.map((d) => d.get(name));
    const [first] = targets;
    if (first !== undefined && targets.every((t) => t === first)) return `${name} -> ${first}`;
    return `${name} -> ${OUTCOME_LINK_DIRS.map((d, i) => `${d}:${targets[i] ?? '-'}`).join(' ')}`;
  });
  const text = await publishedText(roots.run);
  const published = text === undefined ? [] : parsePublished(text).channels;
  const channels = [...published]
    .sort((a, b) => a.devid - b.devid)
    .map(
      (c) =>
        `${c.devid} ${c.name} ${c.state} ${c.tty === undefined ? '-' : basename(c.tty)}` +
        c.problems.map((p) => ` ! ${p.split(':')[0]}`).join(''),
    );
  return { links, channels };
}
