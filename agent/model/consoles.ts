/*
 * The console inventory: what each device/console/<key> node in the guest's xenstore home
 * says, turned into facts the rest of the agent can use (devid, validated name, xenbus state,
 * whether the guest kernel can give it a tty at all, and why not). Layer: pure.
 * Kernel facts (Linux drivers/tty/hvc/hvc_xen.c): xencons_probe() takes only the LAST
 * character of the node name as the console number and refuses 0 (-ENODEV), so devids
 * 10, 20, ... never probe and devid 13 behaves as console 3; hvc_alloc() runs in probe, just
 * before the frontend switches to Initialised (3); Closing/Closed from the backend removes
 * the hvc (xencons_backend_changed()).
 */
import { type NameVerdict, validateName } from './names.js';

/** xenbus states (xen/include/public/io/xenbus.h). */
export const XENBUS_STATES: Readonly<Record<number, string>> = {
  0: 'Unknown',
  1: 'Initialising',
  2: 'InitWait',
  3: 'Initialised',
  4: 'Connected',
  5: 'Closing',
  6: 'Closed',
  7: 'Reconfiguring',
  8: 'Reconfigured',
};

/** What one device/console/<key> directory holds, as read (undefined: node missing). */
export interface RawConsole {
  readonly key: string;
  readonly name: Uint8Array | undefined;
  readonly state: string | undefined;
  readonly backendState?: string | undefined;
  /** Nodes of this console that xenstore refused to show (EACCES); read as missing. */
  readonly denied?: readonly string[];
}

/**
 * Where a console is in its life as the kernel's hvc layer sees it:
 * waiting (not probed yet: no tty), live (hvc allocated), closed (hvc removed).
 */
export type Phase = 'waiting' | 'live' | 'closed';

export interface ConsoleEntry {
  readonly key: string;
  /** The devid, when the key is a canonical decimal number. */
  readonly devid: number | undefined;
  /** undefined: the console has no name node (a plain secondary console, not a channel). */
  readonly name: NameVerdict | undefined;
  readonly state: number | undefined;
  readonly stateName: string;
  readonly phase: Phase;
  /** Why the guest kernel cannot give this console a tty of its own; undefined when it can. */
  readonly unusable: string | undefined;
  /** The backend's xenbus state, when readable (diagnostics only). */
  readonly backendState: number | undefined;
  /** Nodes xenstore refused to show (EACCES): a toolstack permission mistake, reported. */
  readonly denied: readonly string[];
}

function parseState(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,2}$/.test(text.trim())) return undefined;
  return Number(text.trim());
}

function phaseOf(state: number | undefined): Phase {
  if (state === 3 || state === 4) return 'live';
  if (state === 5 || state === 6) return 'closed';
  return 'waiting';
}

function unusableReason(key: string): string | undefined {
  if (!/^(0|[1-9]\d{0,8})$/.test(key)) {
    return `"${key.slice(0, 32)}" is not a devid: the guest kernel derives the console number from the last character of the node name`;
  }
  const devid = Number(key);
  if (devid % 10 === 0) {
    return `devid ${devid} cannot work: the guest kernel takes only the last digit as the console number and refuses 0 (hvc_xen xencons_probe returns -ENODEV); use a devid from 1 to 9`;
  }
  if (devid >= 10) {
    return `devid ${devid} cannot work reliably: the guest kernel takes only the last digit, so it acts as console ${devid % 10} and collides with devid ${devid % 10}; use a devid from 1 to 9`;
  }
  return undefined;
}

/** Builds the inventory, keeping xenstore's directory order (the order the kernel probed them at boot). */
export function inventory(raw: readonly RawConsole[]): ConsoleEntry[] {
  return raw.map((r) => {
    const unusable = unusableReason(r.key);
    const state = parseState(r.state);
    return {
      key: r.key,
      devid: /^\d{1,9}$/.test(r.key) ? Number(r.key) : undefined,
      name: r.name === undefined ? undefined : validateName(r.name),
      state,
      stateName:
        state === undefined
          ? r.state === undefined
            ? 'no state node'
            : 'invalid state'
          : (XENBUS_STATES[state] ?? `state ${state}`),
      phase: unusable ? 'waiting' : phaseOf(state),
      unusable,
      backendState: parseState(r.backendState),
      denied: r.denied ?? [],
    };
  });
}
