/*
 * Prints the channel outcome of the real guest it runs in (test/conformance/channel-outcome.ts)
 * as one JSON line: the links under /dev and what the installed `xen-channel status --json`
 * says, normalised by the same code the simulator's runner uses. Bundled to
 * /opt/e2e/channel-outcome.mjs for Debian's Node 18 and run by the harness's `observe` step as
 * root in the guest. Exit status: 1 with the reason on stderr when `status` fails, else 0.
 * Reads only.
 */
import { execFileSync } from 'node:child_process';
import { channelOutcome, type StatusReport } from '../../conformance/channel-outcome.js';

try {
  const status = execFileSync('xen-channel', ['status', '--json'], { timeout: 30_000, encoding: 'utf8' });
  process.stdout.write(`${JSON.stringify(await channelOutcome('/dev', JSON.parse(status) as StatusReport))}\n`);
} catch (err) {
  process.stderr.write(`channel-outcome: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
