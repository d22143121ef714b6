/*
 * Standalone runner of the xenstore conformance suite (test/conformance/xenstore.ts) for
 * the real-Xen harness: bundled to one .mjs and run with Debian's Node 18, in dom0 against
 * the C xenstored socket and in the guest through /dev/xen/xenbus. Prints one TAP-like line
 * per case and the closing "N passed, N failed" line; exit status 1 on any failure.
 *   node xs-conformance.mjs --transport unix --path /run/xenstored/socket --scratch /tool/xcc
 *   node xs-conformance.mjs --transport device --path /dev/xen/xenbus --scratch data/xcc
 */
import { parseArgs } from 'node:util';
import { XenstoreClient } from '../../../agent/xenstore/client.js';
import { UnixSocketTransport } from '../../../agent/xenstore/transports/unix-socket.js';
import { XenbusDeviceTransport } from '../../../agent/xenstore/transports/xenbus-device.js';
import { type ConformanceEndpoint, caseApplies, conformanceCases, runCase } from '../../conformance/xenstore.js';

const { values } = parseArgs({
  options: {
    transport: { type: 'string' },
    path: { type: 'string' },
    scratch: { type: 'string' },
    name: { type: 'string' },
  },
});
const kind = values.transport;
if ((kind !== 'unix' && kind !== 'device') || !values.path || !values.scratch) {
  process.stderr.write('usage: xs-conformance --transport unix|device --path PATH --scratch NODE [--name LABEL]\n');
  process.exit(2);
}
const transport = kind === 'unix' ? new UnixSocketTransport(values.path) : new XenbusDeviceTransport(values.path);

// Who are we? dom0's socket is privileged; on a device, the home path names our domain.
const probe = await XenstoreClient.connect({ transport });
const domid = kind === 'unix' ? 0 : Number((await probe.read('domid')).trim());
await probe.close();

const endpoint: ConformanceEndpoint = {
  name: values.name ?? `real xenstored via ${transport.description}`,
  connect: () => XenstoreClient.connect({ transport }),
  scratch: values.scratch,
  privileged: domid === 0,
  domid,
};

let passed = 0;
let failed = 0;
let skipped = 0;
for (const [index, c] of conformanceCases.entries()) {
  if (!caseApplies(c, endpoint)) {
    skipped++;
    console.log(`ok ${index + 1} - ${c.name} # SKIP needs a ${c.needs} connection`);
    continue;
  }
  try {
    await runCase(endpoint, c, index);
    passed++;
    console.log(`ok ${index + 1} - ${c.name}`);
  } catch (err) {
    failed++;
    console.log(`not ok ${index + 1} - ${c.name}`);
    console.log(`  # ${String((err as Error)?.stack ?? err).replace(/\n/g, '\n  # ')}`);
  }
}
console.log(`# ${endpoint.name}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 ? 0 : 1);
