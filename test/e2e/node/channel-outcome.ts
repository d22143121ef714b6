/*
 * Prints the channel outcome of the real guest it runs in (test/conformance/channel-outcome.ts)
 * as one JSON line: the links under /dev and the channel list the agent publishes in
 * /run/xen-channels, normalised by the same code the simulator's runner uses. Bundled to
 * /opt/e2e/channel-outcome.mjs for Debian's Node 18 and run by the harness's `observe` step
 * in the guest. Exit status 1 with the reason on stderr when a file cannot be read. Reads only.
 */
import { channelOutcome } from '../../conformance/channel-outcome.js';

try {
  process.stdout.write(`${JSON.stringify(await channelOutcome({ dev: '/dev', run: '/run' }))}\n`);
} catch (err) {
  process.stderr.write(`channel-outcome: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
