/*
 * The channel commands of `xen-channel`: `agent` (the service), `udev-event` (one reconcile,
 * run by the static udev rule on xen-bus console events), `status` (what the agent sees, as
 * a table or --json). A composition root: it builds the real Env with nodeEnv(). Log lines go
 * to stderr with sd-daemon priority prefixes, so journald keeps their level.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Env, Logger, LogLevel } from '../effects/env.js';
import { agentRunning } from '../effects/files.js';
import { nodeEnv } from '../effects/node-env.js';
import { udevRunning } from '../effects/udevadm.js';
import { type ChannelReport, reconcile } from '../reconcile.js';
import { Agent } from '../service/agent.js';
import { LocalSocketServer } from '../service/local-socket.js';
import { XenstoreClient } from '../xenstore/client.js';
import { EXIT, UsageError } from './usage.js';

const priority: Record<LogLevel, number> = { error: 3, warn: 4, info: 6, debug: 7 };

export function journalLogger(err: NodeJS.WritableStream, verbose = false): Logger {
  return {
    log: (level, message) => {
      if (level === 'debug' && !verbose) return;
      err.write(`<${priority[level]}>${message}\n`);
    },
  };
}

export const channelsHelp = `  agent [--no-udev] [--no-hold-raw] [--no-socket] [--socket-group G] [--root DIR]
                                       run the agent: keep /dev/vport/<name> links in step with
                                       xenstore, each channel tty open in raw mode, and the local
                                       JSON-lines API on /run/xen-channels/api.sock
  udev-event [--no-udev] [--root DIR]  update the links once (run by udev on xen console events)
  status [--json] [--root DIR]         every console: devid, name, state, tty, links, problems
`;

interface CommonOptions {
  root: string | undefined;
  noUdev: boolean;
  json: boolean;
  holdRaw: boolean;
  socket: boolean;
  socketGroup: string | undefined;
}

function parseCommon(command: string, argv: readonly string[]): CommonOptions {
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        root: { type: 'string' },
        'no-udev': { type: 'boolean' },
        json: { type: 'boolean' },
        'no-hold-raw': { type: 'boolean' },
        'no-socket': { type: 'boolean' },
        'socket-group': { type: 'string' },
      },
    });
    const agentOnly = ['no-hold-raw', 'no-socket', 'socket-group'] as const;
    for (const flag of agentOnly) {
      if (values[flag] !== undefined && command !== 'agent')
        throw new UsageError(`--${flag} is only for agent, not ${command}`);
    }
    if (values.json && command !== 'status') throw new UsageError(`--json is only for status, not ${command}`);
    if (values['no-hold-raw'] && command !== 'agent')
      throw new UsageError(`--no-hold-raw is only for agent, not ${command}`);
    return {
      root: values.root,
      noUdev: values['no-udev'] ?? false,
      json: values.json ?? false,
      holdRaw: !values['no-hold-raw'],
      socket: !values['no-socket'],
      socketGroup: values['socket-group'],
    };
  } catch (err) {
    throw err instanceof UsageError ? err : new UsageError(`${command}: ${(err as Error).message}`);
  }
}

async function makeEnv(options: CommonOptions, log: Logger): Promise<Env> {
  const probe = nodeEnv({ log, linkMode: 'direct', root: options.root });
  const useUdev = !options.noUdev && (await udevRunning(probe));
  return useUdev ? { ...probe, linkMode: 'udev' } : probe;
}

export async function runChannelCommand(
  command: 'agent' | 'udev-event' | 'status',
  argv: readonly string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const options = parseCommon(command, argv);
  // XEN_CHANNELS_DEBUG=1 adds the debug lines (each pass's stages) to the log.
  const env = await makeEnv(options, journalLogger(err, process.env.XEN_CHANNELS_DEBUG === '1'));
  if (command === 'agent') return runAgent(env, options);
  if (command === 'udev-event' && (await agentRunning(env.roots.run))) {
    env.log.log('debug', 'the xen-channels agent is running and follows this change itself');
    return EXIT.ok;
  }
  const client = await XenstoreClient.connect({ transport: env.xenstore });
  try {
    // udev sets ACTION and DEVPATH for the programs its rules RUN.
    const fromUdev = command === 'udev-event' && process.env.ACTION !== undefined && process.env.DEVPATH !== undefined;
    const result = await reconcile(env, client, { apply: command === 'udev-event', fromUdev });
    if (command === 'status') {
      out.write(
        options.json
          ? `${JSON.stringify({ linkMode: env.linkMode, channels: result.channels }, null, 2)}\n`
          : formatStatus(result.channels, env),
      );
    }
    return EXIT.ok;
  } finally {
    await client.close();
  }
}

/** A group name or number to its gid, from /etc/group. @throws UsageError */
async function groupId(group: string): Promise<number> {
  if (/^\d+$/.test(group)) return Number(group);
  const line = (await readFile('/etc/group', 'utf8')).split('\n').find((l) => l.split(':')[0] === group);
  const gid = Number(line?.split(':')[2]);
  if (!line || !Number.isInteger(gid))
    throw new UsageError(`--socket-group: no group named ${JSON.stringify(group)} in /etc/group`);
  return gid;
}

async function runAgent(env: Env, options: CommonOptions): Promise<number> {
  const gid = options.socketGroup === undefined ? undefined : await groupId(options.socketGroup);
  const agent = await Agent.start(env, { holdRaw: options.holdRaw });
  const runDir = join(env.roots.run, 'xen-channels');
  const socket = options.socket
    ? await LocalSocketServer.start({ path: join(runDir, 'api.sock'), runDir, gid })
    : undefined;
  if (socket)
    env.log.log(
      'info',
      `local API on ${join(runDir, 'api.sock')} (${gid === undefined ? 'root only' : `group ${options.socketGroup}`})`,
    );
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      env.log.log('info', `${signal}: stopping`);
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await socket?.close();
  await agent.stop();
  return EXIT.ok;
}

/** The status table: one line per console, then its problems indented below it. */
export function formatStatus(channels: readonly ChannelReport[], env: Pick<Env, 'linkMode' | 'xenstore'>): string {
  const rows = channels.map((c) => [
    c.key,
    c.name ?? (c.problems.some((p) => p.startsWith('name ')) ? '(rejected)' : '(no name)'),
    c.state,
    c.slot === undefined ? '-' : `hvc${c.slot}`,
    c.links.length > 0 ? `/dev/${c.links[0]}${c.links.length > 1 ? ` +${c.links.length - 1}` : ''}` : '-',
  ]);
  const header = ['DEVID', 'NAME', 'STATE', 'TTY', 'LINKS'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `${cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd()}\n`;
  let text = `xenstore: ${env.xenstore.description}; links: ${env.linkMode === 'udev' ? 'udev rules' : 'made directly'}\n`;
  if (channels.length === 0) return `${text}no consoles under device/console: this guest has no channels\n`;
  text += line(header);
  channels.forEach((c, i) => {
    text += line(rows[i] ?? []);
    for (const p of c.problems) text += `    ! ${p}\n`;
  });
  return text;
}
