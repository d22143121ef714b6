/*
 * The application commands of `xen-channel`, built on the public API (agent/api): `list`,
 * `wait NAME`, `open NAME` (stdin/stdout bridged to the channel in raw mode, like socat).
 * They read what the agent publishes, so they need neither root nor xenstore.
 * Layer: CLI over the API; prints only to the streams it is given.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type LocateOptions, listChannels, waitForChannel } from '../api/channels.js';
import { openChannel } from '../api/open.js';
import { EXIT, UsageError } from './usage.js';

export const appsHelp = `  list [--json] [--root DIR]           the named channels and their device paths
  wait NAME [--timeout S] [--root DIR] print NAME's device once it is usable (after hotplug too)
  open NAME [--root DIR]               bridge stdin/stdout to channel NAME, binary-safe (raw tty)
`;

function parse(command: string, argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { root: { type: 'string' }, json: { type: 'boolean' }, timeout: { type: 'string' } },
    });
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message}`);
  }
}

function locate(root: string | undefined): LocateOptions {
  return root ? { runDir: join(root, 'run', 'xen-channels') } : {};
}

export async function runAppCommand(
  command: 'list' | 'wait' | 'open',
  argv: readonly string[],
  io: { stdin: NodeJS.ReadableStream; stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
): Promise<number> {
  const { values, positionals } = parse(command, argv);
  const where = locate(values.root);
  if (command === 'list') {
    const channels = await listChannels(where);
    if (values.json) {
      io.stdout.write(`${JSON.stringify(channels, null, 2)}\n`);
    } else if (channels.length === 0) {
      io.stdout.write('no Xen channels (none configured for this guest, or the xen-channels agent has not run)\n');
    } else {
      const rows = channels.map((c) => [
        c.name,
        String(c.devid),
        c.tty ?? '-',
        c.state,
        c.links[0] ?? c.problems[0] ?? '',
      ]);
      const widths = [4, 5, 3, 5].map((w, i) => Math.max(w, ...rows.map((r) => (r[i] ?? '').length)));
      const line = (cells: string[]) => `${cells.map((c, i) => (i < 4 ? c.padEnd(widths[i] ?? 0) : c)).join('  ')}\n`;
      io.stdout.write(line(['NAME', 'DEVID', 'TTY', 'STATE', 'LINK OR PROBLEM']));
      for (const row of rows) io.stdout.write(line(row));
    }
    return EXIT.ok;
  }
  const [name, ...rest] = positionals;
  if (name === undefined || rest.length > 0) throw new UsageError(`${command} needs exactly one channel NAME`);
  if (command === 'wait') {
    const seconds = values.timeout === undefined ? undefined : Number(values.timeout);
    if (seconds !== undefined && !(seconds > 0))
      throw new UsageError(`--timeout expects seconds > 0, got ${JSON.stringify(values.timeout)}`);
    const channel = await waitForChannel(name, {
      ...where,
      timeoutMs: seconds === undefined ? undefined : seconds * 1000,
    });
    io.stdout.write(`${channel.links[0] ?? channel.tty}\n`);
    return EXIT.ok;
  }
  const channel = await openChannel(name, where);
  await new Promise<void>((resolve, reject) => {
    channel.pipe(io.stdout, { end: false });
    io.stdin.pipe(channel, { end: false });
    // Like socat: when stdin ends, give the other side half a second to answer, then close.
    io.stdin.once('end', () => setTimeout(resolve, 500));
    channel.once('error', reject);
    channel.once('close', resolve);
  }).finally(() => {
    io.stdin.unpipe(channel);
    channel.destroy();
  });
  return EXIT.ok;
}
