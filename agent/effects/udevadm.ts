/*
 * udev through udevadm: is udev running here, reload rules, re-trigger the ttys whose rules
 * changed, wait for the queue to settle (bounded). Layer: effect (runs udevadm via Exec,
 * never a shell). The hvc ttys emit no uevent of their own when a channel comes or goes, so
 * a changed rule only takes effect through `udevadm trigger --action=change`.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Env } from './env.js';
import { ExecError } from './errors.js';

const SETTLE_SECONDS = 10;

/** True when systemd-udevd is running under this run root (its control socket exists). */
export async function udevRunning(env: Pick<Env, 'roots'>): Promise<boolean> {
  return access(join(env.roots.run, 'udev', 'control')).then(
    () => true,
    () => false,
  );
}

async function udevadm(env: Pick<Env, 'exec'>, args: readonly string[], hint: string): Promise<void> {
  const command = `udevadm ${args.join(' ')}`;
  let result: Awaited<ReturnType<Env['exec']['run']>>;
  try {
    result = await env.exec.run('udevadm', args, { timeoutMs: (SETTLE_SECONDS + 5) * 1000 });
  } catch (err) {
    throw new ExecError(command, null, '', 'is udev installed? (or run with --no-udev)', { cause: err });
  }
  if (result.exitCode !== 0) throw new ExecError(command, result.exitCode, result.stderr, hint);
}

/**
 * Applies changed rules to the given tty slots and, unless `settle` is false, waits for udev
 * to finish. Inside a udev RUN program settling would wait for the very event being
 * handled, so the udev helper passes false and its triggers are handled right after it.
 * @throws ExecError
 */
export async function applyRules(
  env: Pick<Env, 'exec' | 'roots'>,
  slots: readonly number[],
  settle = true,
): Promise<void> {
  await udevadm(env, ['control', '--reload'], 'udev did not reload its rules');
  if (slots.length > 0) {
    const devices = slots.map((s) => join(env.roots.sys, 'class', 'tty', `hvc${s}`));
    await udevadm(env, ['trigger', '--action=change', ...devices], 'udev could not re-trigger the channel ttys');
  }
  if (settle) await udevadm(env, ['settle', `--timeout=${SETTLE_SECONDS}`], 'udev did not finish within 10 s');
}
