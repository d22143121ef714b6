#!/usr/bin/env node
/*
 * The `xen-channel` command: argv → one subcommand. A composition root: it alone wires the
 * real environment (process.env, the file system, stdout) into the layers below.
 * Subcommands so far: `xs` (xenstore diagnostics through the project's own client).
 * Exit codes (also in the README): 0 success, 1 operation failed, 2 usage error,
 * 3 no xenstore endpoint (not a Xen guest/dom0, or not root).
 */
import { existsSync } from 'node:fs';
import { isXenChannelsError } from '../errors.js';
import { VERSION } from '../version.js';
import { chooseTransport } from '../xenstore/default-transport.js';
import { XenstoreUnavailableError } from '../xenstore/errors.js';
import { channelsHelp, runChannelCommand } from './channels.js';
import { demoHelp, runDemo } from './demo.js';
import { EXIT, UsageError } from './usage.js';
import { runXs, xsHelp } from './xs.js';

const help = `Usage: xen-channel <command> [options]

Names Xen PV channels inside a guest.

Commands:
${channelsHelp}${demoHelp}  xs ls|read|watch ...                 xenstore diagnostics with xen-channels' own client

Options:
  --version              print the version
  --help                 this text; \`xen-channel <command> --help\` for a command

Exit status: 0 ok, 1 failed, 2 usage error, 3 no xenstore (not a Xen guest, or not root).
`;

export async function main(
  argv: readonly string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      out.write(help);
      return command === undefined ? EXIT.usage : EXIT.ok;
    }
    if (command === '--version' || command === '-V') {
      out.write(`${VERSION}\n`);
      return EXIT.ok;
    }
    if (command === 'agent' || command === 'udev-event' || command === 'status') {
      if (rest.includes('--help')) {
        out.write(`Usage: xen-channel ${command} [options]\n${channelsHelp}`);
        return EXIT.ok;
      }
      return await runChannelCommand(command, rest, out, err);
    }
    if (command === 'demo') {
      if (rest.includes('--help')) {
        out.write(`Usage: xen-channel demo [--keep]\n${demoHelp}`);
        return EXIT.ok;
      }
      return await runDemo(rest, out);
    }
    if (command === 'xs') {
      if (rest.includes('--help')) {
        out.write(xsHelp);
        return EXIT.ok;
      }
      return await runXs(rest, () => chooseTransport({ env: process.env, exists: existsSync }), out);
    }
    throw new UsageError(`unknown command ${JSON.stringify(command)}; see xen-channel --help`);
  } catch (error) {
    if (error instanceof UsageError) {
      err.write(`xen-channel: ${error.message}\n`);
      return EXIT.usage;
    }
    if (error instanceof XenstoreUnavailableError) {
      err.write(`xen-channel: ${error.message}\n`);
      return EXIT.noXenstore;
    }
    err.write(`xen-channel: ${isXenChannelsError(error) || error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failed;
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  process.exitCode = await main(process.argv.slice(2), process.stdout, process.stderr);
}
