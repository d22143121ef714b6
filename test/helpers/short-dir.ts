/*
 * A short temporary directory for Unix sockets: socket paths are limited to 108 bytes, and
 * tap's t.testdir() paths are longer. Removed when the test ends. Test helper.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

export function shortDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'xc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
