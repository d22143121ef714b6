/*
 * The hvc slot model: which /dev/hvcN each live console holds, replaying what the guest
 * kernel's hvc layer does. Layer: pure; the model is plain data, saved as JSON under /run.
 * Kernel rules (Linux drivers/tty/hvc/hvc_console.c): hvc_alloc() gives a new console the
 * lowest index whose slot is free, and only indexes 0..7 have tty nodes (MAX_NR_HVC_CONSOLES
 * = 8); hvc_remove() frees the slot; the primary console (hvc_instantiate() of vterm 0 in
 * hvc_xen.c) holds slot 0 for good when the guest has one.
 * How the order of allocations is known: while the agent follows changes, it sees each
 * console go live in turn ('observed'). When several changes are seen at once, or when the
 * agent starts with no saved model (first run since boot, /run being empty at boot), frees
 * are applied first and allocations in xenstore directory order, the order in which the
 * kernel probes ('inferred'). Every slot the model calls free is then checked to be empty
 * (opening it fails with ENODEV), except a slot just vacated whose old tty may still be
 * held open; if one is not, the inferred assignments are marked 'uncertain' and get no links.
 */
import type { Phase } from './consoles.js';

export const HVC_SLOTS = 8;

export type Basis = 'observed' | 'inferred' | 'uncertain';

export interface SlotAssignment {
  readonly devid: number;
  /** The hvc index, or null when the kernel could not give it one. */
  readonly slot: number | null;
  readonly basis: Basis;
}

export interface SlotModel {
  readonly primary: boolean;
  /** Live consoles, in allocation order. */
  readonly live: readonly SlotAssignment[];
  /**
   * Slots freed by consoles that went away, not yet seen empty. hvc_remove() gives the index
   * back at once, but the old tty stays openable until its last opener closes it (on real
   * Xen, opening an unplugged hvc4 still held by another process succeeded), so such a slot
   * answering is no evidence against the model. Absent when empty.
   */
  readonly vacated?: readonly number[];
}

export interface ConsolePhase {
  readonly devid: number;
  readonly phase: Phase;
}

export function emptyModel(primary: boolean): SlotModel {
  return { primary, live: [] };
}

/** Slots the model believes are held (by the primary console or a live channel). */
export function heldSlots(model: SlotModel): Set<number> {
  const held = new Set<number>(model.primary ? [0] : []);
  for (const a of model.live) if (a.slot !== null) held.add(a.slot);
  return held;
}

/** Slots the model believes are free: each must answer ENODEV when opened. */
export function freeSlots(model: SlotModel): number[] {
  const held = heldSlots(model);
  return Array.from({ length: HVC_SLOTS }, (_, i) => i).filter((i) => !held.has(i));
}

/**
 * The model after the consoles moved to `consoles` (usable consoles only, in xenstore
 * directory order). Consoles no longer live free their slot first; consoles newly live then
 * take the lowest free slot in directory order. `batch` says whether this is one observed
 * change ('observed') or several at once / a reconstruction ('inferred').
 */
export function advance(
  model: SlotModel,
  consoles: readonly ConsolePhase[],
  batch: 'observed' | 'inferred',
): SlotModel {
  const liveNow = new Set(consoles.filter((c) => c.phase === 'live').map((c) => c.devid));
  const kept = model.live.filter((a) => liveNow.has(a.devid));
  const known = new Set(kept.map((a) => a.devid));
  const newlyLive = consoles.filter((c) => c.phase === 'live' && !known.has(c.devid));
  const basis: Basis =
    batch === 'observed' && newlyLive.length <= 1 && kept.length === model.live.length ? 'observed' : 'inferred';
  const live = [...kept];
  for (const c of newlyLive) {
    const held = heldSlots({ primary: model.primary, live });
    const slot = Array.from({ length: HVC_SLOTS }, (_, i) => i).find((i) => !held.has(i)) ?? null;
    live.push({ devid: c.devid, slot, basis });
  }
  const freed = model.live.flatMap((a) => (!liveNow.has(a.devid) && a.slot !== null ? [a.slot] : []));
  const held = heldSlots({ primary: model.primary, live });
  return withVacated(
    { primary: model.primary, live },
    [...(model.vacated ?? []), ...freed].filter((s) => !held.has(s)),
  );
}

/** `model` with exactly these vacated slots (the property left out when there are none). */
function withVacated(model: SlotModel, slots: readonly number[]): SlotModel {
  const { vacated: _, ...rest } = model;
  const unique = [...new Set(slots)].sort((a, b) => a - b);
  return unique.length > 0 ? { ...rest, vacated: unique } : rest;
}

/**
 * Forgets the vacated slots that were opened (`probed`) and answered ENODEV: their old tty is
 * gone for good. A vacated slot not opened in this pass stays vacated.
 */
export function settleVacated(model: SlotModel, probed: readonly number[], occupied: readonly number[]): SlotModel {
  if (!model.vacated) return model;
  return withVacated(
    model,
    model.vacated.filter((s) => !probed.includes(s) || occupied.includes(s)),
  );
}

/**
 * Applies the result of checking the slots the model calls free. `occupied` lists those that
 * turned out to have a console behind them. The kernel allocates a console's tty before its
 * frontend leaves Initialising (hvc_xen.c xencons_connect_backend(): hvc_alloc(), then
 * ring-ref and port, then state 3), so `waiting` consoles may already hold the lowest free
 * slots, one each, in order: such slots are no evidence against the model. Any other
 * occupied slot means the inferred part of the model is wrong: those assignments become
 * 'uncertain'.
 */
export function crossCheck(model: SlotModel, occupied: readonly number[], waiting = 0): SlotModel {
  const vacated = new Set(model.vacated ?? []);
  const sorted = occupied.filter((s) => !vacated.has(s)).sort((a, b) => a - b);
  const explained =
    sorted.length <= waiting &&
    freeSlots(model)
      .filter((s) => !vacated.has(s))
      .slice(0, sorted.length)
      .every((slot, i) => slot === sorted[i]);
  if (sorted.length === 0 || explained) return model;
  return {
    ...model,
    live: model.live.map((a) => (a.basis === 'inferred' ? { ...a, basis: 'uncertain' } : a)),
  };
}

/** The slot for `devid`, if the model knows it for sure enough to link. */
export function slotOf(model: SlotModel, devid: number): { slot: number } | { problem: string } {
  const a = model.live.find((x) => x.devid === devid);
  if (!a) return { problem: 'the console is not live (no tty allocated)' };
  if (a.slot === null) return { problem: `no free hvc slot: the guest kernel has only /dev/hvc0..${HVC_SLOTS - 1}` };
  if (a.basis === 'uncertain') {
    return {
      problem: 'which /dev/hvcN it is cannot be told for sure (changes happened while xen-channels was not watching)',
    };
  }
  return { slot: a.slot };
}

/** Reads a saved model back; undefined when the data is not a model (then reconstruct). */
export function parseModel(data: unknown): SlotModel | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const { primary, live } = data as { primary?: unknown; live?: unknown };
  if (typeof primary !== 'boolean' || !Array.isArray(live)) return undefined;
  const parsed: SlotAssignment[] = [];
  for (const item of live) {
    const { devid, slot, basis } = (item ?? {}) as { devid?: unknown; slot?: unknown; basis?: unknown };
    if (typeof devid !== 'number' || !Number.isInteger(devid) || devid < 1 || devid > 9) return undefined;
    if (slot !== null && (typeof slot !== 'number' || !Number.isInteger(slot) || slot < 0 || slot >= HVC_SLOTS))
      return undefined;
    if (basis !== 'observed' && basis !== 'inferred' && basis !== 'uncertain') return undefined;
    parsed.push({ devid, slot, basis });
  }
  const { vacated } = data as { vacated?: unknown };
  if (vacated === undefined) return { primary, live: parsed };
  if (!Array.isArray(vacated) || !vacated.every((s) => Number.isInteger(s) && s >= 0 && s < HVC_SLOTS))
    return undefined;
  return withVacated({ primary, live: parsed }, vacated as number[]);
}
