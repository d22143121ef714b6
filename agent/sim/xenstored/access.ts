/*
 * Who may do what to a node in the simulated xenstored: the permission bits a domain gets from a
 * node's permission list. Layer: pure.
 * Rules (perm_for_conn() in xenstored_core.c): domain 0 is privileged and gets everything; the
 * owner (first entry) gets everything; otherwise the first explicit entry for the domain, else
 * the default access of the first entry. Only privileged callers and owners get PERM_OWNER.
 * Every domid is taken to exist (the sim has no hypervisor to ask, so no XS_PERM_IGNORE).
 */
import { accessFor, canRead, canWrite, type Permission } from '../../xenstore/perms.js';

/** XS_PERM_READ, XS_PERM_WRITE and XS_PERM_OWNER of xenstore_lib.h, as bits. */
export const PERM_READ = 1;
export const PERM_WRITE = 2;
export const PERM_OWNER = 8;
export const PERM_ALL = PERM_READ | PERM_WRITE | PERM_OWNER;

/** Domain 0 is the privileged domain (domain_is_unprivileged() is false only for it). */
export function isPrivileged(domid: number): boolean {
  return domid === 0;
}

/** The permission bits `domid` has on a node with permission list `perms` (perm_for_conn()). */
export function permFor(domid: number, perms: readonly Permission[]): number {
  if (isPrivileged(domid)) return PERM_ALL;
  const owner = perms[0];
  if (owner === undefined) return 0;
  if (owner.domid === domid) return PERM_ALL;
  const access = accessFor(perms, domid);
  return (canRead(access) ? PERM_READ : 0) | (canWrite(access) ? PERM_WRITE : 0);
}

/** True when `domid` may read through any of the permission lists (watch_permitted()). */
export function mayReadAny(domid: number, lists: ReadonlyArray<readonly Permission[]>): boolean {
  return lists.some((perms) => (permFor(domid, perms) & PERM_READ) !== 0);
}
