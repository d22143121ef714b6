/*
 * Prints the channel outcome of the real guest it runs in (test/conformance/channel-outcome.ts)
 * as one JSON line: the links under /dev and what `xen-channel status --json` says, computed
 * by the same code the simulator's runner uses. Bundled to /opt/e2e/channel-outcome.mjs for
 * Debian's Node 18 and run by the harness's `observe` step as root in the guest. Exit status:
 * that of `status` when it fails (its message on stderr), else 0. Reads only.
 */
import { PassThrough } from 'node:stream';
import { main } from '../../../agent/cli/main.js';
import { channelOutcome, type StatusReport } from '../../conformance/channel-outcome.js';

const stdout = new PassThrough();
const chunks: Buffer[] = [];
stdout.on('data', (c: Buffer) => chunks.push(c));
const code = await main(['status', '--json'], { stdin: new PassThrough(), stdout, stderr: process.stderr });
if (code !== 0) {
  process.exitCode = code;
} else {
  const status = JSON.parse(Buffer.concat(chunks).toString()) as StatusReport;
  process.stdout.write(`${JSON.stringify(await channelOutcome('/dev', status))}\n`);
}
