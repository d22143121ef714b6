/*
 * The client on a transport that takes one request at a time (the guest's xenbus device),
 * against the simulator's model of that device: the Linux driver keeps each request's
 * payload in one per-file buffer until its thread copies it to the ring, so a request written
 * before the previous reply goes out with the later payload (seen on real Xen, agent-soak:
 * a READ of device/console/3/state reached xenstored as "device/console/3/backen").
 */
import type { Duplex } from 'node:stream';
import t from 'tap';
import { XenstoredSim } from '../../../agent/sim/xenstored/index.js';
import { XenstoreClient } from '../../../agent/xenstore/client.js';
import type { Transport } from '../../../agent/xenstore/transport.js';
import { FrameDecoder, XsType } from '../../../agent/xenstore/wire.js';

const NODES: ReadonlyArray<[string, string]> = [
  ['device/console/3/state', '4'],
  ['device/console/3/backend', '/local/domain/0/backend/console/5/3'],
  ['device/console/3/name', 'org.example.three'],
  ['device/console/1/state', '4'],
];

/** A guest (domid 5) with NODES, and a transport to its simulated xenbus device. */
function deviceOf(oneRequestAtATime: boolean) {
  const sim = new XenstoredSim();
  for (const [path, value] of NODES) sim.write(`/local/domain/5/${path}`, value, [{ domid: 5, access: 'none' }]);
  let unanswered = 0;
  let mostUnanswered = 0;
  const transport: Transport = {
    description: 'simulated xenbus device (domain 5)',
    relativePaths: true,
    oneRequestAtATime,
    connect: async (): Promise<Duplex> => {
      const duplex = sim.connect({ domid: 5, xenbusDevice: true });
      // Count requests written and not yet answered, from the client's side of the stream.
      const replies = new FrameDecoder();
      const write = duplex.write.bind(duplex) as (chunk: Buffer) => boolean;
      duplex.write = ((chunk: Buffer) => {
        unanswered++;
        mostUnanswered = Math.max(mostUnanswered, unanswered);
        return write(chunk);
      }) as Duplex['write'];
      duplex.on('data', (chunk: Buffer) => {
        for (const frame of replies.push(chunk)) if (frame.type !== XsType.WATCH_EVENT) unanswered--;
      });
      return duplex;
    },
  };
  return { sim, transport, mostUnanswered: () => mostUnanswered };
}

t.test('pipelined requests on the device model are mangled, as on real Xen', async (t) => {
  const { sim, transport } = deviceOf(false);
  const client = await XenstoreClient.connect({ transport });
  t.teardown(async () => {
    await client.close();
    await sim.close();
  });
  const seen: string[] = [];
  sim.onRequest((request) => {
    if (request.type === XsType.READ) seen.push(request.path);
    return undefined;
  });
  await Promise.allSettled(NODES.map(([path]) => client.read(path)));
  t.equal(seen.length, NODES.length, 'xenstored got as many reads as were sent');
  t.equal(seen[0], NODES[NODES.length - 1]?.[0], 'the first read went out with the last read payload');
  t.not(seen[1], NODES[1]?.[0], 'the second read was not for the node asked for either');
});

t.test('one request at a time: every read comes back right, never two unanswered', async (t) => {
  const { sim, transport, mostUnanswered } = deviceOf(true);
  const client = await XenstoreClient.connect({ transport });
  t.teardown(async () => {
    await client.close();
    await sim.close();
  });
  for (let round = 0; round < 5; round++) {
    const values = await Promise.all(NODES.map(([path]) => client.read(path)));
    t.same(
      values,
      NODES.map(([, value]) => value),
      `round ${round + 1}: all ${NODES.length} concurrent reads right`,
    );
  }
  t.equal(mostUnanswered(), 1, 'the client never had two requests unanswered');
});

t.test('one request at a time: queued requests fail when the connection is lost', async (t) => {
  const { sim, transport } = deviceOf(true);
  const client = await XenstoreClient.connect({ transport });
  const reads = NODES.map(([path]) => client.read(path));
  await client.close();
  const results = await Promise.allSettled(reads);
  t.ok(
    results.every((r) => r.status === 'rejected'),
    'every request, written or held back, is rejected when the client closes',
  );
  // A new connection starts with nothing held back.
  const again = await XenstoreClient.connect({ transport });
  t.teardown(async () => {
    await again.close();
    await sim.close();
  });
  t.equal(await again.read(NODES[0]?.[0] ?? ''), NODES[0]?.[1]);
});
