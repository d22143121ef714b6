import { join } from 'node:path';
import t from 'tap';
import { XenstoredSim } from '../../agent/sim/xenstored/server.js';
import { XenstoreClient } from '../../agent/xenstore/client.js';
import type { Transport } from '../../agent/xenstore/transport.js';
import { UnixSocketTransport } from '../../agent/xenstore/transports/unix-socket.js';
import { type ConformanceEndpoint, caseApplies, conformanceCases, runCase } from '../conformance/xenstore.js';
import { shortDir } from '../helpers/short-dir.js';

const GUEST = 3;

/** A simulated host with one guest whose home is laid out as libxl does it. */
function simulatedHost(): XenstoredSim {
  const sim = new XenstoredSim();
  sim.write(`/local/domain/${GUEST}`, '', [
    { domid: 0, access: 'none' },
    { domid: GUEST, access: 'read' },
  ]);
  sim.write(`/local/domain/${GUEST}/domid`, String(GUEST));
  sim.write(`/local/domain/${GUEST}/data`, '', [{ domid: GUEST, access: 'none' }]);
  return sim;
}

function endpoint(name: string, transport: Transport, scratch: string, domid: number): ConformanceEndpoint {
  return {
    name,
    connect: () => XenstoreClient.connect({ transport }),
    scratch,
    privileged: domid === 0,
    domid,
  };
}

t.test('xenstore conformance against the simulated xenstored', async (t) => {
  const sim = simulatedHost();
  t.teardown(() => sim.close());
  const socketPath = join(shortDir(t), 'socket');
  await sim.listen(socketPath, { domid: 0 });
  const endpoints = [
    endpoint('simulator dom0 (unix socket)', new UnixSocketTransport(socketPath), '/tool/xcc', 0),
    endpoint('simulator dom0 (in memory)', sim.transport({ domid: 0 }), '/tool/xcc-mem', 0),
    endpoint(`simulator guest ${GUEST} (relative paths)`, sim.transport({ domid: GUEST }), 'data/xcc', GUEST),
  ];
  for (const ep of endpoints) {
    t.test(ep.name, async (t) => {
      for (const [index, c] of conformanceCases.entries()) {
        if (!caseApplies(c, ep)) continue;
        t.test(c.name, () => runCase(ep, c, index));
      }
    });
  }
});
