/*
 * Channel names: which names xen-channels will turn into /dev paths and udev rules, and which
 * channel wins when two share a name. Layer: pure (no I/O, no node: imports).
 *
 * The allowed set is deliberately small: ASCII letters, digits, '.', '_' and '-', 1 to 128
 * bytes, not starting with '.' or '-'. Every real channel name we know fits
 * (org.qemu.guest_agent.0, s-4-VM.vport, com.redhat.spice.0, org.libguestfs.channel.0,
 * org.linux-kvm.port.0), and every such name is safe as a path component, inside a quoted
 * udev rule value (no quote, backslash, '$', '%', '*', '?', '[' or whitespace), and as an
 * argument (no leading '-'). A leading '.' would allow "." and ".." and hidden files. Besides
 * the 128-byte cap, the longest systemd device unit name a link creates
 * ("dev-virtio\x2dports-<name>.device", where each '-' is escaped to 4 characters) must fit
 * systemd's 255-character limit. A rejected name is reported with its reason, never rewritten.
 */

/** Longest accepted name, in bytes. */
export const NAME_MAX_BYTES = 128;

/** A name that passed validateName(): the only kind rules and paths accept. */
export type ChannelName = string & { readonly __brand: 'ChannelName' };

export type NameVerdict = { ok: true; name: ChannelName } | { ok: false; reason: string; shown: string };

const allowed = /^[A-Za-z0-9._-]+$/;

/** A printable, bounded rendering of untrusted bytes for messages (backslash, '"' and non-printables as \xNN). */
export function showBytes(raw: Uint8Array, max = 64): string {
  let out = '';
  for (const byte of raw.subarray(0, max)) {
    const plain = byte >= 0x20 && byte < 0x7f && byte !== 0x5c && byte !== 0x22;
    out += plain ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return raw.length > max ? `${out}… (${raw.length} bytes)` : out;
}

/**
 * Decides whether the raw `name` bytes from xenstore make an acceptable channel name.
 * Pure; never throws.
 */
export function validateName(raw: Uint8Array): NameVerdict {
  const shown = showBytes(raw);
  const reject = (reason: string): NameVerdict => ({ ok: false, reason, shown });
  if (raw.length === 0) return reject('the name is empty');
  if (raw.length > NAME_MAX_BYTES)
    return reject(`the name is ${raw.length} bytes; at most ${NAME_MAX_BYTES} are accepted`);
  let text = '';
  for (const byte of raw) {
    if (byte > 0x7e || byte < 0x20) return reject('the name contains a control or non-ASCII byte');
    text += String.fromCharCode(byte);
  }
  if (!allowed.test(text)) {
    const bad = [...text].find((c) => !/[A-Za-z0-9._-]/.test(c)) ?? '?';
    return reject(`the name contains ${JSON.stringify(bad)}; only letters, digits, '.', '_' and '-' are accepted`);
  }
  if (text.startsWith('.')) return reject("the name starts with '.'");
  if (text.startsWith('-')) return reject("the name starts with '-'");
  if (systemdDeviceUnitLength(text) > 255) return reject('the name is too long once escaped for systemd');
  return { ok: true, name: text as ChannelName };
}

/** Length of "dev-virtio\x2dports-<escaped name>.device", the longest unit name we create. */
function systemdDeviceUnitLength(name: string): number {
  // systemd-escape: '/' becomes '-', and '-' (and any byte outside [A-Za-z0-9:_.]) becomes \xNN.
  const escaped = [...name].reduce((n, c) => n + (/[A-Za-z0-9:_.]/.test(c) ? 1 : 4), 0);
  return 'dev-virtio\\x2dports-'.length + escaped + '.device'.length;
}

export interface NamedCandidate {
  readonly devid: number;
  readonly name: ChannelName;
}

export interface NameConflict {
  readonly name: ChannelName;
  readonly winner: number;
  readonly losers: readonly number[];
}

/**
 * When several channels share a name, the lowest devid keeps it (deterministic, and stable
 * while channels come and go above it); the others are reported and get no links.
 */
export function resolveDuplicates(candidates: readonly NamedCandidate[]): {
  winners: ReadonlySet<number>;
  conflicts: NameConflict[];
} {
  const byName = new Map<ChannelName, number[]>();
  for (const c of candidates) byName.set(c.name, [...(byName.get(c.name) ?? []), c.devid]);
  const winners = new Set<number>();
  const conflicts: NameConflict[] = [];
  for (const [name, devids] of byName) {
    const [winner, ...losers] = [...devids].sort((a, b) => a - b);
    if (winner === undefined) continue;
    winners.add(winner);
    if (losers.length > 0) conflicts.push({ name, winner, losers });
  }
  return { winners, conflicts };
}
