/*
 * Xenstore permissions as typed values. A node's permission list is [owner, ...grants]: the
 * first entry names the owner (who always has full access) and the access every other
 * domain gets by default; later entries grant a specific domain its access. Text form:
 * one letter (n none, r read, w write, b both) then the domid, e.g. "n0", "r5", "b1".
 * Layer: pure.
 */

export type Access = 'none' | 'read' | 'write' | 'both';

/** One entry of a permission list. */
export interface Permission {
  readonly domid: number;
  readonly access: Access;
}

const accessByLetter: Record<string, Access> = { n: 'none', r: 'read', w: 'write', b: 'both' };
const letterByAccess: Record<Access, string> = { none: 'n', read: 'r', write: 'w', both: 'b' };

const DOMID_MAX = 0xffff;

/** Parses "r5"; undefined when the text is not a permission. */
export function parsePermission(text: string): Permission | undefined {
  const match = /^([nrwb])(\d{1,5})$/.exec(text);
  if (!match) return undefined;
  const domid = Number(match[2]);
  const access = accessByLetter[match[1] as string];
  if (domid > DOMID_MAX || access === undefined) return undefined;
  return { domid, access };
}

/**
 * Formats a permission as xenstored expects it.
 * @throws RangeError when the domid is not in 0..65535, TypeError for an unknown access.
 */
export function formatPermission(perm: Permission): string {
  if (!Number.isInteger(perm.domid) || perm.domid < 0 || perm.domid > DOMID_MAX) {
    throw new RangeError(`expected a domid in 0..${DOMID_MAX}, got ${String(perm.domid)} (${typeof perm.domid})`);
  }
  const letter = letterByAccess[perm.access];
  if (letter === undefined) {
    throw new TypeError(`expected access none|read|write|both, got ${String(perm.access)} (${typeof perm.access})`);
  }
  return `${letter}${perm.domid}`;
}

export function canRead(access: Access): boolean {
  return access === 'read' || access === 'both';
}

export function canWrite(access: Access): boolean {
  return access === 'write' || access === 'both';
}

/**
 * The access `domid` has to a node with permission list `perms` (owner rule, then explicit
 * grants, then the default of the first entry). Privileged callers are not special here:
 * the server decides who is privileged.
 */
export function accessFor(perms: readonly Permission[], domid: number): Access {
  const [owner, ...grants] = perms;
  if (owner === undefined) return 'none';
  if (owner.domid === domid) return 'both';
  const grant = grants.find((p) => p.domid === domid);
  return grant ? grant.access : owner.access;
}
