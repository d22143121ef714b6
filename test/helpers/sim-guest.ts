/*
 * Test helpers around the simulated guest: start one in a short temporary directory (socket
 * paths must stay under 108 bytes), an Env that records log lines, the links of the dev
 * tree, and a round trip from a link to the dom0 socket of a channel. Closed by teardown.
 */
import { open, readlink } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { Env } from '../../agent/effects/env.js';
import { SimulatedGuest, type SimulatedGuestOptions, simEnv } from '../../agent/sim/guest.js';
import { shortDir } from './short-dir.js';

export async function startGuest(t: Test, options: Partial<SimulatedGuestOptions> = {}): Promise<SimulatedGuest> {
  const guest = await SimulatedGuest.start({ root: shortDir(t), ...options });
  t.teardown(() => guest.close());
  return guest;
}

export function recordingEnv(guest: SimulatedGuest, overrides: Partial<Env> = {}): Env & { lines: string[] } {
  const lines: string[] = [];
  // What an operator sees: debug lines (each pass's stages) are left out.
  const env = simEnv(guest, {
    log: { log: (level, message) => level !== 'debug' && lines.push(`${level}: ${message}`) },
    ...overrides,
  });
  return Object.assign(env, { lines });
}

/** Where a link points, or undefined. */
export function linkTarget(guest: SimulatedGuest, rel: string): Promise<string | undefined> {
  return readlink(join(guest.roots.dev, rel)).catch(() => undefined);
}

/**
 * Writes `text` into the tty at `path` (in the guest) and resolves with what the dom0 socket
 * of channel `devid` received, once it contains `text`.
 */
export async function guestToDom0(guest: SimulatedGuest, path: string, devid: number, text: string): Promise<string> {
  const socket = createConnection(guest.socketPath(devid));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let received = '';
  const arrived = new Promise<string>((resolve, reject) => {
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      if (received.includes(text)) resolve(received);
    });
    socket.once('error', reject);
  });
  const tty = await open(path, 'w');
  try {
    await tty.write(`${text}\n`);
  } finally {
    await tty.close();
  }
  const bound = new Promise<string>((resolve) =>
    setTimeout(() => resolve(`(nothing within 5 s; got ${JSON.stringify(received)})`), 5000).unref(),
  );
  const result = await Promise.race([arrived, bound]);
  socket.destroy();
  return result;
}
