/*
 * `xen-channel host attach|detach|list`: the dom0 side, run as root in dom0, adding and
 * removing channels on running guests (which xl and libxl cannot do) and listing every
 * guest's channels. Layer: CLI; parses arguments, then calls agent/host over the HostEnv it
 * is given; prints results to stdout and progress to stderr.
 */
import { parseArgs } from 'node:util';
import {
  type AttachRequest,
  attachChannel,
  detachChannel,
  type HostChannel,
  type HostEnv,
  listChannels,
} from '../host/channels.js';
import { describeState } from '../host/layout.js';
import type { Io } from './main.js';
import { EXIT, UsageError } from './usage.js';

export const hostHelp = `  host attach DOMAIN --name NAME (--socket PATH [--listen|--connect] | --pty) [--devid N]
                                       dom0: add a channel to a running guest, wait until it connects
  host detach DOMAIN (NAME | --devid N)
                                       dom0: close a guest's channel gracefully, then remove it
  host list [DOMAIN] [--json]          dom0: every guest's channels (libxl's and attached ones)
`;

const hostUsage = `Usage (in dom0, as root; DOMAIN is a guest's name or domid):
  xen-channel host attach DOMAIN --name NAME --socket PATH [--listen|--connect] [--devid N] [--timeout S] [--json]
  xen-channel host attach DOMAIN --name NAME --pty [--devid N] [--timeout S] [--json]
  xen-channel host detach DOMAIN NAME [--timeout S]
  xen-channel host detach DOMAIN --devid N [--timeout S]
  xen-channel host list [DOMAIN] [--json]

attach: QEMU (the domain's device model) listens on PATH (--listen, the default, like xl's
  connection=socket), connects to a listener already on PATH (--connect), or opens a pty
  (--pty); the channel gets the lowest free devid in 1..9 unless --devid says which. Waits
  up to --timeout seconds (default 30) for the guest kernel to connect it.
detach: backend Closing, waits up to --timeout seconds (default 30) for the guest to close
  the channel, then removes it and QEMU's character device. A guest that does not answer
  leaves the channel closed but present.
`;

function seconds(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback * 1000;
  const n = Number(text);
  if (!(n > 0)) throw new UsageError(`--timeout expects a positive number of seconds, got ${JSON.stringify(text)}`);
  return n * 1000;
}

function devidOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`--devid expects a number (1 to 9), got ${JSON.stringify(text)}`);
  return Number(text);
}

type Parsed = ReturnType<typeof parse>;

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      socket: { type: 'string' },
      listen: { type: 'boolean' },
      connect: { type: 'boolean' },
      pty: { type: 'boolean' },
      devid: { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
}

function attachRequest({ values, positionals }: Parsed): AttachRequest {
  const [, domain, extra] = positionals;
  if (domain === undefined || extra !== undefined) throw new UsageError('host attach needs exactly one DOMAIN');
  if (values.name === undefined) throw new UsageError('host attach needs --name NAME');
  if (values.listen && values.connect) throw new UsageError('--listen and --connect exclude each other');
  if (Boolean(values.pty) === (values.socket !== undefined))
    throw new UsageError('host attach needs either --socket PATH or --pty');
  if (values.pty && (values.listen || values.connect)) throw new UsageError('--listen and --connect go with --socket');
  if (values.socket !== undefined && !values.socket.startsWith('/')) {
    throw new UsageError(`--socket expects an absolute path, got ${JSON.stringify(values.socket)}`);
  }
  const devid = devidOption(values.devid);
  return {
    domain,
    name: values.name,
    connection:
      values.socket === undefined
        ? { kind: 'pty' }
        : { kind: 'socket', path: values.socket, mode: values.connect ? 'connect' : 'listen' },
    ...(devid === undefined ? {} : { devid }),
    timeoutMs: seconds(values.timeout, 30),
  };
}

const endpoint = (c: HostChannel): string => c.path ?? c.tty ?? '-';

function table(channels: readonly HostChannel[]): string {
  const rows = [
    ['DOMAIN', 'DOMID', 'DEVID', 'NAME', 'CONNECTION', 'PATH/PTY', 'FRONTEND', 'BACKEND', 'XL'],
    ...channels.map((c) => [
      c.domain,
      String(c.domid),
      String(c.devid),
      c.name ?? '-',
      c.connection ?? '-',
      endpoint(c),
      describeState(c.frontendState),
      describeState(c.backendState),
      c.recorded ? 'yes' : 'no',
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map(
      (r) =>
        `${r
          .map((cell, i) => cell.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd()}\n`,
    )
    .join('');
}

/** Runs `host ...`; `makeEnv` is only called once the arguments are known to be right. */
export async function runHost(
  argv: readonly string[],
  makeEnv: (note: (line: string) => void) => Promise<HostEnv & { close(): Promise<void> }>,
  io: Io,
): Promise<number> {
  if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(hostUsage);
    return argv.length === 0 ? EXIT.usage : EXIT.ok;
  }
  const parsed = parse(argv);
  const { values, positionals } = parsed;
  const verb = positionals[0];
  const note = (line: string): void => {
    io.stderr.write(`xen-channel: ${line}\n`);
  };
  let run: (env: HostEnv) => Promise<void>;
  if (verb === 'attach') {
    const request = attachRequest(parsed);
    run = async (env) => {
      const { channel, already } = await attachChannel(env, request);
      if (values.json) io.stdout.write(`${JSON.stringify({ ...channel, already })}\n`);
      else
        io.stdout.write(
          `${already ? 'already attached' : 'attached'}: ${channel.name} on ${channel.domain} (${channel.domid}) devid ${channel.devid}, ${channel.connection} ${endpoint(channel)}, frontend ${describeState(channel.frontendState)}\n`,
        );
    };
  } else if (verb === 'detach') {
    const [, domain, name, extra] = positionals;
    const devid = devidOption(values.devid);
    if (domain === undefined || extra !== undefined || (name === undefined) === (devid === undefined)) {
      throw new UsageError('host detach needs DOMAIN and either a channel NAME or --devid N');
    }
    const timeoutMs = seconds(values.timeout, 30);
    run = async (env) => {
      const channel = await detachChannel(env, {
        domain,
        ...(name === undefined ? {} : { name }),
        ...(devid === undefined ? {} : { devid }),
        timeoutMs,
      });
      io.stdout.write(
        `detached: ${channel.name ?? '(unnamed)'} from ${channel.domain} (${channel.domid}) devid ${channel.devid}\n`,
      );
    };
  } else if (verb === 'list') {
    const [, domain, extra] = positionals;
    if (extra !== undefined) throw new UsageError('host list takes at most one DOMAIN');
    run = async (env) => {
      const channels = await listChannels(env.xs, domain);
      io.stdout.write(values.json ? `${JSON.stringify(channels)}\n` : table(channels));
    };
  } else {
    throw new UsageError(
      `host needs attach, detach or list, got ${JSON.stringify(verb ?? '')}; see xen-channel host --help`,
    );
  }
  const env = await makeEnv(note);
  try {
    await run(env);
  } finally {
    await env.close();
  }
  return EXIT.ok;
}
