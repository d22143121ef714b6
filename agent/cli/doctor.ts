/*
 * `xen-channel doctor`: gathers facts about this guest through the Env (sysfs, /dev, /proc,
 * the kernel log via dmesg, udev, the agent's published list, status when xenstore can be
 * read) and prints the findings of model/doctor.ts, each with what to do. Exit 0 when all is
 * well, 1 when something needs attention. A composition root.
 */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Logger } from '../effects/env.js';
import { nodeEnv } from '../effects/node-env.js';
import { udevRunning } from '../effects/udevadm.js';
import { type DoctorFacts, diagnose } from '../model/doctor.js';
import { publishedPath, reconcile } from '../reconcile.js';
import { XenstoreClient } from '../xenstore/client.js';
import { EXIT, UsageError } from './usage.js';

export const doctorHelp = `  doctor [--root DIR]                  what is wrong with channels here, and what to do
`;

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );
const readText = (path: string): Promise<string | undefined> =>
  readFile(path, 'utf8').then(
    (t) => t.trim(),
    () => undefined,
  );

export async function runDoctor(argv: readonly string[], out: NodeJS.WritableStream): Promise<number> {
  let root: string | undefined;
  try {
    root = parseArgs({ args: [...argv], options: { root: { type: 'string' } } }).values.root;
  } catch (err) {
    throw new UsageError(`doctor: ${(err as Error).message}`);
  }
  const quiet: Logger = { log: () => {} };
  const probe = nodeEnv({
    log: quiet,
    linkMode: 'direct',
    root,
    xenstore: { description: 'none', relativePaths: true, connect: () => Promise.reject(new Error('unused')) },
  });
  const { roots } = probe;
  const dmesg = await probe.exec.run('dmesg', []).catch(() => undefined);
  let channels: DoctorFacts['channels'] = [];
  try {
    const env = nodeEnv({ log: quiet, linkMode: 'direct', root });
    const client = await XenstoreClient.connect({ transport: env.xenstore });
    try {
      const status = await reconcile(env, client, { apply: false });
      channels = status.channels.map((c) => ({
        label: c.name ?? `devid ${c.key}`,
        problems: c.problems,
        linked: c.links.length > 0,
      }));
    } finally {
      await client.close();
    }
  } catch {
    // No xenstore (not root, or not Xen): the findings about the device and the hypervisor say why.
  }
  const facts: DoctorFacts = {
    hypervisor: (await readText(join(roots.sys, 'hypervisor', 'type'))) ?? (root ? 'xen' : undefined),
    xenbusDevice: await exists(join(roots.dev, 'xen', 'xenbus')),
    kernelRelease: await readText(join(roots.proc, 'sys', 'kernel', 'osrelease')),
    kernelLog:
      dmesg && dmesg.exitCode === 0 ? dmesg.stdout.split('\n').filter((l) => l.includes('console')) : undefined,
    udevRunning: await udevRunning(probe),
    agentPublished: await exists(publishedPath(probe)),
    channels,
  };
  const findings = diagnose(facts);
  for (const f of findings) out.write(`${f.ok ? 'ok      ' : 'PROBLEM '} ${f.text}\n`);
  return findings.every((f) => f.ok) ? EXIT.ok : EXIT.failed;
}
