/*
 * A stand-in for udev for reconcile tests: an Exec that answers `udevadm control --reload`,
 * `udevadm trigger --action=change <sys>/class/tty/hvcN...` and `udevadm settle` by reading
 * the generated rules file and making exactly the SYMLINK+= links its rule for hvcN names
 * (and removing the ones it made before for that tty), as udev does on a change event.
 * Records every call; can be told to fail. Test helper.
 */
import { mkdir, readFile, rm, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Exec, ExecResult, Roots } from '../../agent/effects/env.js';

export interface FakeUdev extends Exec {
  readonly calls: string[];
  /** Make the next call whose argument list starts with `verb` exit with `code`. */
  failNext(verb: string, code: number): void;
}

export function fakeUdev(roots: Roots, rulesFile: string): FakeUdev {
  const calls: string[] = [];
  const owned = new Map<string, string[]>(); // hvcN -> links udev made for it
  let failure: { verb: string; code: number } | undefined;
  const done = (exitCode: number, stderr = ''): ExecResult => ({ exitCode, stdout: '', stderr, durationMs: 1 });
  return {
    calls,
    failNext: (verb, code) => {
      failure = { verb, code };
    },
    run: async (command, args) => {
      calls.push([command, ...args].join(' '));
      if (command !== 'udevadm') throw Object.assign(new Error(`spawn ${command} ENOENT`), { code: 'ENOENT' });
      if (failure && args[0] === failure.verb) {
        const code = failure.code;
        failure = undefined;
        return done(code, `udevadm ${args[0]}: simulated failure`);
      }
      if (args[0] !== 'trigger') return done(0);
      const rules = await readFile(rulesFile, 'utf8').catch(() => '');
      for (const device of args.slice(2)) {
        const tty = basename(device);
        for (const old of owned.get(tty) ?? []) await rm(join(roots.dev, old), { force: true });
        const rule = rules.split('\n').find((line) => line.includes(`KERNEL=="${tty}"`));
        const links = rule ? [...rule.matchAll(/SYMLINK\+="([^"]+)"/g)].map((m) => m[1] ?? '') : [];
        for (const link of links) {
          await mkdir(join(roots.dev, link, '..'), { recursive: true });
          await rm(join(roots.dev, link), { force: true });
          await symlink(`../${tty}`, join(roots.dev, link));
        }
        owned.set(tty, links);
      }
      return done(0);
    },
  };
}
