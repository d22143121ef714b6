/*
 * `xen-channel xs`: xenstore diagnostics through the project's own client, for operators and
 * for the real-Xen harness (what the guest sees of device/console). Layer: CLI over an
 * injected transport; prints to the given stream only.
 *   xs ls [PATH] [--json]        the subtree: every node with its value (default: device/console)
 *   xs read PATH                 one value, raw
 *   xs watch PATH [--count N]    one line per watch event (the first is the registration)
 */
import { parseArgs } from 'node:util';
import { XenstoreClient, type XenstoreOperations } from '../xenstore/client.js';
import { XenstoreError } from '../xenstore/errors.js';
import { joinPath } from '../xenstore/paths.js';
import type { Transport } from '../xenstore/transport.js';
import { EXIT, UsageError } from './usage.js';

export const xsHelp = `Usage:
  xen-channel xs ls [PATH] [--json]      list PATH and everything below it (default: device/console)
  xen-channel xs read PATH               print one value
  xen-channel xs watch PATH [--count N]  print watch events (the first one is the registration)
Relative paths are relative to this guest's home (/local/domain/<domid>); dom0 needs absolute paths.
`;

export interface TreeNode {
  path: string;
  value: string;
  children: TreeNode[];
}

/** Reads `path` and its whole subtree. Nodes that vanish while being read are left out. */
export async function readTree(ops: XenstoreOperations, path: string): Promise<TreeNode | undefined> {
  try {
    const value = await ops.read(path);
    const names = await ops.directory(path);
    const children: TreeNode[] = [];
    for (const name of names) {
      const child = await readTree(ops, joinPath(path, name));
      if (child) children.push(child);
    }
    return { path, value, children };
  } catch (err) {
    if (err instanceof XenstoreError && err.code === 'ENOENT') return undefined;
    throw err;
  }
}

function printTree(node: TreeNode, out: NodeJS.WritableStream): void {
  out.write(`${node.path} = ${JSON.stringify(node.value)}\n`);
  for (const child of node.children) printTree(child, out);
}

/** Runs `xs`; the transport is only chosen once the arguments are known to be right. */
export async function runXs(
  argv: readonly string[],
  makeTransport: () => Transport,
  out: NodeJS.WritableStream,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { json: { type: 'boolean' }, count: { type: 'string' } },
  });
  const [verb, path] = positionals;
  if (verb !== 'ls' && verb !== 'read' && verb !== 'watch') throw new UsageError('xs needs ls, read or watch');
  if ((verb === 'read' || verb === 'watch') && path === undefined) throw new UsageError(`xs ${verb} needs a PATH`);
  const count = values.count === undefined ? Number.POSITIVE_INFINITY : Number(values.count);
  if (!(count > 0)) throw new UsageError(`--count expects a positive number, got ${JSON.stringify(values.count)}`);

  const client = await XenstoreClient.connect({ transport: makeTransport() });
  try {
    if (verb === 'read') {
      out.write(`${await client.read(path ?? '')}\n`);
    } else if (verb === 'ls') {
      const tree = await readTree(client, path ?? 'device/console');
      if (!tree) throw new XenstoreError('ENOENT', 'ls', path ?? 'device/console', 'no such node', 'xenstored');
      if (values.json) out.write(`${JSON.stringify(tree)}\n`);
      else printTree(tree, out);
    } else {
      const watch = await client.watch(path ?? '');
      let seen = 0;
      for await (const event of watch) {
        out.write(`${event.path}\n`);
        if (++seen >= count) break;
      }
    }
    return EXIT.ok;
  } finally {
    await client.close();
  }
}
