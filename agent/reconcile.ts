/*
 * The reconcile step, shared by every trigger (the service's xenstore watch, the udev
 * helper, `status`): observe (xenstore, tty probes) → plan (pure: inventory, slot model,
 * names, rules) → apply (rules file + udevadm, or direct links) → verify → save.
 * Layer: orchestration over the effects interfaces; the decisions live in model/.
 * Invariants: idempotent (a second run with nothing changed writes nothing and runs no
 * udevadm); serialised across processes by the run-root lock; a failure leaves the previous
 * rules and links in place and is thrown once, with what to do; a problem with one channel
 * (bad name, unusable devid, uncertain tty) never stops the others from being linked, and
 * is logged once, when it first appears.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChannelInfo, PUBLISHED_FILE, renderPublished } from './api/published.js';
import type { Env } from './effects/env.js';
import { readFileIfExists, withLock, writeFileAtomic } from './effects/files.js';
import { syncLinks, ttyTarget, verifyLinks } from './effects/links.js';
import { applyRules } from './effects/udevadm.js';
import { type ConsoleEntry, inventory, type RawConsole } from './model/consoles.js';
import { type ChannelName, resolveDuplicates } from './model/names.js';
import { type ChannelLink, GENERATED_RULES_FILE, linkPaths, renderRules } from './model/rules.js';
import {
  advance,
  type Basis,
  crossCheck,
  emptyModel,
  freeSlots,
  parseModel,
  type SlotModel,
  settleVacated,
  slotOf,
} from './model/slots.js';
import type { XenstoreOperations } from './xenstore/client.js';
import { XenstoreError } from './xenstore/errors.js';

/** Where a channel stands, for `status`, the API and logs. */
export interface ChannelReport {
  readonly key: string;
  readonly devid: number | undefined;
  /** The validated name; undefined for an unnamed console or a rejected name. */
  readonly name: string | undefined;
  readonly state: string;
  /** The hvc index when known for sure. */
  readonly slot: number | undefined;
  readonly basis: Basis | undefined;
  /** Links relative to the dev root ("vport/<name>"), present when the channel is linked. */
  readonly links: readonly string[];
  readonly problems: readonly string[];
}

export interface Observation {
  readonly consoles: readonly RawConsole[];
  /** The guest has a primary PV console (it holds hvc0). */
  readonly primary: boolean;
}

export interface ReconcileResult {
  readonly channels: readonly ChannelReport[];
  readonly model: SlotModel;
  /** Whether the rules or links changed in this run. */
  readonly changed: boolean;
  /** Set while a console waits for its probe: reconcile again after this long to judge it. */
  readonly recheckAfterMs: number | undefined;
}

interface SavedState {
  readonly model: SlotModel;
  /** Problems already logged, by console key: logged again only when they change. */
  readonly problems: Readonly<Record<string, readonly string[]>>;
  /** When each console was first seen waiting for its probe (epoch ms). */
  readonly waitingSince: Readonly<Record<string, number>>;
  /** What each linked console was linked as ("name -> hvcN"), to log only what changes. */
  readonly linked: Readonly<Record<string, string>>;
}

export const CONSOLE_DIR = 'device/console';

/** How long a console may wait for the guest kernel's probe before it is reported stuck. */
export const STUCK_AFTER_MS = 10_000;

function stuckProblem(entry: ConsoleEntry): string {
  // No running count of seconds here: a problem is logged again only when its text changes.
  const since = `in ${entry.stateName} for more than ${STUCK_AFTER_MS / 1000} s`;
  if (entry.backendState === undefined || entry.backendState < 2) {
    return `stuck ${since}: the backend in dom0 is not serving this console (is the domain's QEMU running?)`;
  }
  return (
    `stuck ${since} although the backend is ready: this guest kernel did not probe it. Linux 5.16 up to the ` +
    "Nov 2023 fix 'hvc/xen: fix event channel handling for secondary consoles' cannot probe secondary consoles " +
    `(the kernel log says "probe of console-${entry.key} failed with error -2"); update the guest kernel`
  );
}

export function statePath(env: Pick<Env, 'roots'>): string {
  return join(env.roots.run, 'xen-channels', 'state.json');
}

export function publishedPath(env: Pick<Env, 'roots'>): string {
  return join(env.roots.run, 'xen-channels', PUBLISHED_FILE);
}

/** The named channels as applications see them (see api/published.ts). */
export function publishedChannels(reports: readonly ChannelReport[], devRoot: string): ChannelInfo[] {
  // One entry per name: the channel that keeps it (lowest devid); the others are for status.
  const keeper = new Map<string, number>();
  for (const r of reports) {
    if (r.name !== undefined && r.devid !== undefined)
      keeper.set(r.name, Math.min(r.devid, keeper.get(r.name) ?? r.devid));
  }
  return reports.flatMap((r) => {
    if (r.name === undefined || r.devid === undefined || keeper.get(r.name) !== r.devid) return [];
    const linked = r.links.length > 0 && r.slot !== undefined;
    return [
      {
        name: r.name,
        devid: r.devid,
        tty: linked ? join(devRoot, `hvc${r.slot}`) : undefined,
        state: r.state,
        links: linked ? r.links.map((rel) => join(devRoot, rel)) : [],
        problems: r.problems,
      },
    ];
  });
}

export function rulesPath(env: Pick<Env, 'roots'>): string {
  return join(env.roots.run, 'udev', 'rules.d', GENERATED_RULES_FILE);
}

/** A node's value; undefined when missing or refused (a refused path is added to `denied`). */
async function readOptional(ops: XenstoreOperations, path: string, denied?: string[]): Promise<Buffer | undefined> {
  try {
    return await ops.readBuffer(path);
  } catch (err) {
    if (!(err instanceof XenstoreError && (err.code === 'ENOENT' || err.code === 'EACCES'))) throw err;
    if (err.code === 'EACCES') denied?.push(path);
    return undefined;
  }
}

/** Reads every console under device/console. Nodes that vanish meanwhile are skipped. */
export async function observe(ops: XenstoreOperations): Promise<Observation> {
  let keys: string[];
  try {
    keys = await ops.directory(CONSOLE_DIR);
  } catch (err) {
    if (!(err instanceof XenstoreError && err.code === 'ENOENT')) throw err;
    keys = [];
  }
  const consoles: RawConsole[] = [];
  for (const key of keys) {
    const base = `${CONSOLE_DIR}/${key}`;
    const denied: string[] = [];
    const [name, state, backend] = await Promise.all([
      readOptional(ops, `${base}/name`, denied),
      readOptional(ops, `${base}/state`, denied),
      readOptional(ops, `${base}/backend`, denied),
    ]);
    if (name === undefined && state === undefined && backend === undefined && denied.length === 0) continue; // removed meanwhile
    const backendPath = backend?.toString('utf8');
    const backendState =
      backendPath && /^\/[A-Za-z0-9/_-]+$/.test(backendPath)
        ? await readOptional(ops, `${backendPath}/state`)
        : undefined;
    consoles.push({
      key,
      name,
      state: state?.toString('latin1'),
      backendState: backendState?.toString('latin1'),
      denied,
    });
  }
  const primary =
    (await readOptional(ops, 'console/port')) !== undefined ||
    (await readOptional(ops, 'console/ring-ref')) !== undefined;
  return { consoles, primary };
}

/** The slot model after `observation`, before the free-slot cross-check. Pure. */
export function nextModel(
  previous: SlotModel | undefined,
  entries: readonly ConsoleEntry[],
  primary: boolean,
): SlotModel {
  const usable = entries.flatMap((e) =>
    e.unusable === undefined && e.devid !== undefined ? [{ devid: e.devid, phase: e.phase }] : [],
  );
  return advance(previous ?? emptyModel(primary), usable, previous ? 'observed' : 'inferred');
}

/** Per-channel reports and the links to make, from the inventory and the model. Pure. */
export function planChannels(
  entries: readonly ConsoleEntry[],
  model: SlotModel,
  linkDirs: readonly string[],
  waitedMs: (key: string) => number = () => 0,
): { reports: ChannelReport[]; links: ChannelLink[] } {
  const named = entries.flatMap((e) =>
    e.name?.ok && e.devid !== undefined && !e.unusable ? [{ devid: e.devid, name: e.name.name }] : [],
  );
  const { winners, conflicts } = resolveDuplicates(named);
  const links: ChannelLink[] = [];
  const reports = entries.map((entry): ChannelReport => {
    const problems: string[] = [];
    if (entry.unusable) problems.push(entry.unusable);
    for (const path of entry.denied)
      problems.push(`xenstore refuses the guest read access to ${path} (EACCES): the toolstack set wrong permissions`);
    if (entry.name && !entry.name.ok) problems.push(`name "${entry.name.shown}" rejected: ${entry.name.reason}`);
    const waited = entry.phase === 'waiting' && !entry.unusable ? waitedMs(entry.key) : 0;
    if (waited >= STUCK_AFTER_MS) problems.push(stuckProblem(entry));
    const conflict = conflicts.find((c) => entry.devid !== undefined && c.losers.includes(entry.devid));
    if (conflict) problems.push(`name ${conflict.name} is also used by devid ${conflict.winner}, which keeps it`);
    const assignment = entry.devid === undefined ? undefined : model.live.find((a) => a.devid === entry.devid);
    const where = entry.devid === undefined || entry.unusable ? undefined : slotOf(model, entry.devid);
    if (where && 'problem' in where && entry.phase === 'live') problems.push(where.problem);
    const slot = where && 'slot' in where ? where.slot : undefined;
    const name = entry.name?.ok ? entry.name.name : undefined;
    let channelLinks: string[] = [];
    if (
      name !== undefined &&
      slot !== undefined &&
      entry.devid !== undefined &&
      winners.has(entry.devid) &&
      !conflict
    ) {
      links.push({ name: name as ChannelName, devid: entry.devid, slot });
      channelLinks = linkPaths(name as ChannelName, linkDirs);
    }
    return {
      key: entry.key,
      devid: entry.devid,
      name,
      state: entry.stateName,
      slot,
      basis: assignment?.basis,
      links: channelLinks,
      problems,
    };
  });
  return { reports, links };
}

async function loadState(env: Env): Promise<SavedState | undefined> {
  const text = await readFileIfExists(statePath(env));
  if (text === undefined) return undefined;
  try {
    const data = JSON.parse(text) as Record<string, unknown>;
    const model = parseModel(data.model);
    if (!model) throw new Error('not a slot model');
    const record = <T>(value: unknown): Readonly<Record<string, T>> =>
      typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, T>) : {};
    return {
      model,
      problems: record<readonly string[]>(data.problems),
      waitingSince: record<number>(data.waitingSince),
      linked: record<string>(data.linked),
    };
  } catch (err) {
    env.log.log('warn', `ignoring unreadable saved state ${statePath(env)} (${(err as Error).message}); rebuilding it`);
    return undefined;
  }
}

/** How often a pass looks again when consoles change while their ttys are being checked. */
const OBSERVE_ATTEMPTS = 3;

/**
 * Consoles of `entries` that may hold a tty the model does not place yet. The kernel probes
 * every key whose last character is not '0', unusable ones too (devid 13 acts as console 3
 * and takes a slot when no devid 3 is live), as the hostile-input corpus shows. Returns keys.
 */
function unplacedConsoles(entries: readonly ConsoleEntry[], model: SlotModel): string[] {
  const placed = new Set(model.live.map((a) => String(a.devid)));
  return entries.flatMap((e) =>
    !e.key.endsWith('0') && e.state !== undefined && e.state !== 5 && e.state !== 6 && !placed.has(e.key)
      ? [e.key]
      : [],
  );
}

/**
 * Observes xenstore, predicts the slot model and checks the slots it calls free. Reading
 * xenstore and opening the ttys are not one atomic step: a console plugged in between holds a
 * slot the observation knew nothing of. So when the check contradicts the model, xenstore is
 * read again, and while it keeps changing the pass starts over (up to OBSERVE_ATTEMPTS times).
 * Then consoles not placed by the model in either reading (waiting for their probe, or
 * plugged meanwhile) may each explain one occupied slot, the lowest free ones (the watch
 * brings them into the next pass); only an occupied slot they cannot explain makes the
 * inferred assignments uncertain.
 */
async function observeAndCheck(
  env: Env,
  ops: XenstoreOperations,
  saved: SlotModel | undefined,
  releaseBeforeProbe: ReconcileOptions['releaseBeforeProbe'],
) {
  for (let attempt = 1; ; attempt++) {
    const observation = await observe(ops);
    env.log.log('debug', `pass: observed ${observation.consoles.map((c) => `${c.key}:${c.state ?? '-'}`).join(' ')}`);
    const entries = inventory(observation.consoles);
    const predicted = nextModel(saved, entries, observation.primary);
    // Only a pass that can make the ttys' holders let go opens vacated slots (see
    // ReconcileOptions.releaseBeforeProbe); for the others they are no evidence anyway.
    const vacated = new Set(predicted.vacated ?? []);
    const probed = freeSlots(predicted).filter((slot) => releaseBeforeProbe !== undefined || !vacated.has(slot));
    await releaseBeforeProbe?.(probed);
    const occupied: number[] = [];
    for (const slot of probed) {
      const probe = await env.probeTty(join(env.roots.dev, `hvc${slot}`));
      env.log.log('debug', `pass: hvc${slot} ${probe}`);
      if (probe === 'occupied') occupied.push(slot);
    }
    const before = unplacedConsoles(entries, predicted);
    const model = crossCheck(predicted, occupied, before.length);
    if (model === predicted) return { entries, predicted, model, probed, occupied };
    const again = await observe(ops);
    if (attempt < OBSERVE_ATTEMPTS && JSON.stringify(again) !== JSON.stringify(observation)) {
      env.log.log('debug', 'pass: consoles changed while their ttys were checked; looking again');
      continue;
    }
    const unplaced = new Set([...before, ...unplacedConsoles(inventory(again.consoles), predicted)]);
    const explained = crossCheck(predicted, occupied, unplaced.size) === predicted;
    if (explained) env.log.log('debug', `pass: consoles ${[...unplaced].join(', ')} explain the occupied slots`);
    return { entries, predicted, model: explained ? predicted : model, probed, occupied };
  }
}

/** Replaces `path` only when its content differs: an idle pass writes nothing. */
async function writeIfChanged(path: string, content: string): Promise<void> {
  if ((await readFileIfExists(path)) !== content) await writeFileAtomic(path, content);
}

/** Slots whose rule differs between two rendered files (to re-trigger exactly those ttys). */
function changedSlots(before: string, after: string): number[] {
  const rulesBySlot = (text: string): Map<number, string> =>
    new Map(
      text.split('\n').flatMap((line) => {
        const m = /KERNEL=="hvc(\d)"/.exec(line);
        return m ? [[Number(m[1]), line] as const] : [];
      }),
    );
  const a = rulesBySlot(before);
  const b = rulesBySlot(after);
  return [...new Set([...a.keys(), ...b.keys()])].filter((s) => a.get(s) !== b.get(s)).sort((x, y) => x - y);
}

/** The reports with each broken link's problem (from verifyLinks) added to its channel. */
function withLinkProblems(reports: readonly ChannelReport[], broken: ReadonlyMap<string, string>): ChannelReport[] {
  return reports.map((r) => {
    const bad = r.links.flatMap((rel) => (broken.has(rel) ? [broken.get(rel) as string] : []));
    return bad.length ? { ...r, problems: [...r.problems, ...bad] } : r;
  });
}

export interface ReconcileOptions {
  /**
   * Problems this caller has already logged, by console key; updated in place. The service
   * keeps its own, so that a problem the udev helper saw first is still logged by the
   * service. Default: the record in the saved state.
   */
  readonly logged?: Map<string, readonly string[]>;
  /** false: compute and report without touching rules, links or the saved state (`status`). */
  readonly apply?: boolean;
  /** Running as a udev RUN program: do not wait for udev, nor check links it has not made yet. */
  readonly fromUdev?: boolean;
  /**
   * Called with the slots the pass is about to open to check they are free, before it opens
   * them: a caller that holds channel ttys open (the agent's raw holder) closes the ones among
   * them first. In Linux's hvc layer, opening /dev/hvcN while the hung-up tty of the console
   * removed from that slot is still held open reopens the removed console (hvc_open() on it
   * requests its freed interrupt): on real Xen this leaked the irq's /proc entry and then
   * corrupted kernel memory (a general protection fault in the next hvc_open()). A pass
   * without this callback (the udev helper, `status`) cannot make the agent let go, so it
   * does not open vacated slots at all: they stay vacated until the agent's pass settles them.
   */
  readonly releaseBeforeProbe?: (slots: readonly number[]) => Promise<void>;
}

/**
 * One reconcile pass.
 * @throws XenstoreError, FileEffectError, ExecError, LockTimeoutError — previous links stay.
 */
export async function reconcile(
  env: Env,
  ops: XenstoreOperations,
  options: ReconcileOptions = {},
): Promise<ReconcileResult> {
  const apply = options.apply ?? true;
  const waitForUdev = !options.fromUdev;
  env.log.log('debug', 'pass: waiting for the lock');
  return withLock(env.roots.run, env.clock, async () => {
    env.log.log('debug', 'pass: lock held');
    const saved = await loadState(env);
    const {
      entries,
      predicted,
      model: checked,
      probed,
      occupied,
    } = await observeAndCheck(env, ops, saved?.model, options.releaseBeforeProbe);
    if (checked !== predicted) {
      const seen = entries.map((e) => `${e.key}:${e.state ?? '-'}`).join(' ');
      const believed = predicted.live.map((a) => `${a.devid}@hvc${a.slot}`).join(' ');
      env.log.log(
        'warn',
        `hvc slots thought free have a console behind them (${occupied.map((s) => `hvc${s}`).join(', ')}): the channels ` +
          `placed by inference lose their links rather than risk wrong ones (consoles ${seen}; model ${believed})`,
      );
    }
    const model = settleVacated(checked, probed, occupied);
    const now = env.clock.epochMs();
    const waitingSince: Record<string, number> = {};
    for (const e of entries) {
      if (e.phase === 'waiting' && !e.unusable) waitingSince[e.key] = saved?.waitingSince[e.key] ?? now;
    }
    const waitedMs = (key: string): number => now - (waitingSince[key] ?? now);
    const { reports, links } = planChannels(entries, model, env.linkDirs, waitedMs);
    const pending = Object.keys(waitingSince)
      .map((key) => STUCK_AFTER_MS - waitedMs(key))
      .filter((ms) => ms > 0);
    const recheckAfterMs = pending.length > 0 ? Math.min(...pending) : undefined;
    const wanted = new Map(
      links.flatMap((l) => linkPaths(l.name, env.linkDirs).map((rel) => [rel, ttyTarget(l.slot)] as const)),
    );
    // status: a link that should be there and is not (a failing udevadm, a full /run) shows.
    if (!apply)
      return {
        channels: withLinkProblems(reports, await verifyLinks(env.roots.dev, wanted)),
        model,
        changed: false,
        recheckAfterMs,
      };

    env.log.log('debug', `pass: applying ${links.length} links (${env.linkMode})`);
    let changed: boolean;
    if (env.linkMode === 'udev') {
      const rules = renderRules(links, env.linkDirs);
      const before = (await readFileIfExists(rulesPath(env))) ?? '';
      changed = before !== rules;
      if (changed) {
        await writeFileAtomic(rulesPath(env), rules);
        try {
          await applyRules(env, changedSlots(before, rules), waitForUdev);
        } catch (err) {
          // Put the old rules back, so that the next run sees the change again and retries.
          await (before === '' ? rm(rulesPath(env), { force: true }) : writeFileAtomic(rulesPath(env), before));
          throw err;
        }
      }
    } else {
      const { created, removed } = await syncLinks(env.roots.dev, env.linkDirs, wanted);
      changed = created.length + removed.length > 0;
    }
    const checkLinks = waitForUdev || env.linkMode === 'direct';
    const finalReports = withLinkProblems(
      reports,
      checkLinks ? await verifyLinks(env.roots.dev, wanted) : new Map<string, string>(),
    );

    const problems: Record<string, readonly string[]> = {};
    for (const r of finalReports) {
      if (r.problems.length === 0) continue;
      problems[r.key] = r.problems;
      const before = options.logged ? (options.logged.get(r.key) ?? []) : (saved?.problems[r.key] ?? []);
      options.logged?.set(r.key, r.problems);
      for (const p of r.problems) {
        if (!before.includes(p)) env.log.log('warn', `channel ${r.name ?? `devid ${r.key}`}: ${p}`, { key: r.key });
      }
    }
    const linked: Record<string, string> = {};
    for (const r of finalReports) {
      if (r.links.length === 0 || r.slot === undefined) continue;
      linked[r.key] = `${r.name} -> hvc${r.slot}`;
      if (saved?.linked[r.key] !== linked[r.key]) {
        env.log.log(
          'info',
          `channel ${r.name} (devid ${r.devid}) is /dev/hvc${r.slot}: /dev/${r.links.join(', /dev/')}`,
        );
      }
    }
    for (const [key, was] of Object.entries(saved?.linked ?? {})) {
      if (!(key in linked))
        env.log.log('info', `channel ${was.replace(/ -> .*/, '')} (devid ${key}) is gone: links removed`);
    }
    await writeIfChanged(publishedPath(env), renderPublished(publishedChannels(finalReports, env.roots.dev)));
    await writeIfChanged(statePath(env), `${JSON.stringify({ model, problems, waitingSince, linked }, null, 2)}\n`);
    return { channels: finalReports, model, changed, recheckAfterMs };
  });
}
