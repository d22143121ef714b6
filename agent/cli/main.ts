#!/usr/bin/env node
/*
 * The `xen-channel` command: argv → one subcommand from the table below. A composition root:
 * it alone wires the real process (environment, stdin/stdout/stderr) into the layers below,
 * and turns errors into one message on stderr and an exit code (listed in the README):
 * 0 ok, 1 failed, 2 usage error, 3 no xenstore endpoint, 4 no such channel (or not usable),
 * 5 timed out.
 */
import { existsSync } from 'node:fs';
import { ChannelNotFoundError, ChannelUnusableError, TimeoutError } from '../api/errors.js';
import { isXenChannelsError } from '../errors.js';
import { HostChannelNotFoundError, HostTimeoutError } from '../host/errors.js';
import { nodeHostEnv } from '../host/node-host.js';
import { VERSION } from '../version.js';
import { chooseTransport } from '../xenstore/default-transport.js';
import { XenstoreUnavailableError } from '../xenstore/errors.js';
import { appsHelp, runAppCommand } from './apps.js';
import { channelsHelp, runChannelCommand } from './channels.js';
import { demoHelp, runDemo } from './demo.js';
import { doctorHelp, runDoctor } from './doctor.js';
import { hostHelp, runHost } from './host.js';
import { EXIT, UsageError } from './usage.js';
import { runXs, xsHelp } from './xs.js';

export interface Io {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

type Command = (rest: readonly string[], io: Io) => Promise<number>;

const commands: Record<string, { help: string; run: Command }> = {
  list: { help: appsHelp, run: (rest, io) => runAppCommand('list', rest, io) },
  wait: { help: appsHelp, run: (rest, io) => runAppCommand('wait', rest, io) },
  open: { help: appsHelp, run: (rest, io) => runAppCommand('open', rest, io) },
  status: { help: channelsHelp, run: (rest, io) => runChannelCommand('status', rest, io.stdout, io.stderr) },
  agent: { help: channelsHelp, run: (rest, io) => runChannelCommand('agent', rest, io.stdout, io.stderr) },
  'udev-event': { help: channelsHelp, run: (rest, io) => runChannelCommand('udev-event', rest, io.stdout, io.stderr) },
  doctor: { help: doctorHelp, run: (rest, io) => runDoctor(rest, io.stdout) },
  demo: { help: demoHelp, run: (rest, io) => runDemo(rest, io.stdout) },
  host: { help: hostHelp, run: (rest, io) => runHost(rest, nodeHostEnv, io) },
  xs: {
    help: xsHelp,
    run: (rest, io) => runXs(rest, () => chooseTransport({ env: process.env, exists: existsSync }), io.stdout),
  },
};

const help = `Usage: xen-channel <command> [options]

Names Xen PV channels inside a guest: /dev/vport/<name> for each channel, kept current.
In dom0, \`host\` attaches and detaches channels of running guests.

Commands:
${appsHelp}${channelsHelp}${doctorHelp}${demoHelp}${hostHelp}  xs ls|read|watch ...                 xenstore as xen-channels' own client sees it

Options:
  --version                            print the version
  --help                               this text; \`xen-channel <command> --help\` for a command

Exit status: 0 ok, 1 failed, 2 usage error, 3 no xenstore (not a Xen guest, or not root),
4 no such channel (or not usable now), 5 timed out.
`;

function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return EXIT.usage;
  if (error instanceof XenstoreUnavailableError) return EXIT.noXenstore;
  if (
    error instanceof ChannelNotFoundError ||
    error instanceof ChannelUnusableError ||
    error instanceof HostChannelNotFoundError
  )
    return EXIT.noChannel;
  if (error instanceof TimeoutError || error instanceof HostTimeoutError) return EXIT.timedOut;
  return EXIT.failed;
}

export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(help);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-V') {
    io.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
  const command = commands[name];
  try {
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}; see xen-channel --help`);
    if (rest.includes('--help') && name !== 'host') {
      io.stdout.write(`Usage: xen-channel ${name} ...\n${command.help}`);
      return EXIT.ok;
    }
    return await command.run(rest, io);
  } catch (error) {
    const message = isXenChannelsError(error) || error instanceof Error ? error.message : String(error);
    io.stderr.write(`xen-channel: ${message}\n`);
    return exitCodeOf(error);
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  process.exitCode = await main(process.argv.slice(2), process);
}
