/*
 * The guest half of the real-Xen benchmark (scenario bench-real-xen, read by `npm run bench`).
 *   node bench-guest.mjs latency PREFIX COUNT
 *     Follows device/console through the guest's own xenstore connection; for each channel
 *     named PREFIX<i>, the time from its frontend reaching Connected (state 4) to
 *     /dev/vport/<name> resolving, with the installed agent doing the work. Prints one
 *     "SAMPLE <name> <ms>" line per channel, then "LATENCY <json>" after COUNT channels.
 *   node bench-guest.mjs datapath NAME BYTES TRIPS ROUNDS
 *     With dom0 echoing every byte of channel NAME: for each round, openChannel() and the raw
 *     device (bench/lib/channel-sides.mjs) in turn, alternating which goes first; prints
 *     "DATAPATH <json>" with the medians and the ratios.
 * The link is polled every 2 ms, and only while a channel is connected and not yet linked.
 */
import { readlink } from 'node:fs/promises';
import { openChannel, setRawMode, waitForChannel } from '../../../agent/index.js';
import { XenstoreClient } from '../../../agent/xenstore/client.js';
import { XenbusDeviceTransport } from '../../../agent/xenstore/transports/xenbus-device.js';
import { echoMeasure, median, openRawDevice, openStream } from '../../../bench/lib/channel-sides.mjs';

const round2 = (x: number): number => Math.round(x * 100) / 100;
const percentile = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
};

async function latency(prefix: string, count: number): Promise<void> {
  const client = await XenstoreClient.connect({ transport: new XenbusDeviceTransport('/dev/xen/xenbus') });
  const watch = await client.watch('device/console');
  const connectedAt = new Map<string, number>();
  const samples: number[] = [];
  const follow = async (name: string, t0: number): Promise<void> => {
    while (
      !(await readlink(`/dev/vport/${name}`).then(
        () => true,
        () => false,
      ))
    ) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const ms = performance.now() - t0;
    samples.push(ms);
    console.log(`SAMPLE ${name} ${round2(ms)}`);
  };
  const pending: Promise<void>[] = [];
  for await (const _ of watch) {
    const now = performance.now();
    for (const key of await client.directory('device/console').catch(() => [])) {
      const [name, state] = await Promise.all([
        client.read(`device/console/${key}/name`).catch(() => ''),
        client.read(`device/console/${key}/state`).catch(() => ''),
      ]);
      if (!name.startsWith(prefix) || state !== '4' || connectedAt.has(name)) continue;
      connectedAt.set(name, now);
      pending.push(follow(name, now));
    }
    if (connectedAt.size >= count) break;
  }
  await Promise.all(pending);
  await watch.close();
  await client.close();
  const result = {
    samples: samples.length,
    p50: round2(percentile(samples, 50)),
    p99: round2(percentile(samples, 99)),
  };
  console.log(`LATENCY ${JSON.stringify(result)}`);
}

async function datapath(name: string, bytes: number, trips: number, rounds: number): Promise<void> {
  const info = await waitForChannel(name, { timeoutMs: 60_000 });
  if (!info.tty) throw new Error(`channel ${name} has no tty`);
  const tty = info.tty;
  const sides = {
    openChannel: () => openStream(openChannel, name),
    raw: () => openRawDevice(tty, setRawMode),
  };
  const runs: Record<keyof typeof sides, { echoMiBps: number; rttMs: number }[]> = { openChannel: [], raw: [] };
  for (let r = 0; r < rounds; r++) {
    const order = (r % 2 === 0 ? ['openChannel', 'raw'] : ['raw', 'openChannel']) as (keyof typeof sides)[];
    for (const label of order) {
      const side = await sides[label]();
      try {
        runs[label].push(await echoMeasure(side, bytes, trips));
      } finally {
        await side.close();
      }
    }
  }
  const pick = (label: keyof typeof sides, key: 'echoMiBps' | 'rttMs'): number =>
    median(runs[label].map((x) => x[key]));
  const result = {
    bytes,
    trips,
    rounds,
    echo_MiBps: { openChannel: round2(pick('openChannel', 'echoMiBps')), raw: round2(pick('raw', 'echoMiBps')) },
    round_trip_ms: { openChannel: round2(pick('openChannel', 'rttMs')), raw: round2(pick('raw', 'rttMs')) },
    ratio: {
      echo_throughput: round2(pick('openChannel', 'echoMiBps') / pick('raw', 'echoMiBps')),
      round_trip_speed: round2(pick('raw', 'rttMs') / pick('openChannel', 'rttMs')),
    },
  };
  console.log(`DATAPATH ${JSON.stringify(result)}`);
}

const [mode, ...args] = process.argv.slice(2);
try {
  if (mode === 'latency' && args.length === 2) await latency(args[0] as string, Number(args[1]));
  else if (mode === 'datapath' && args.length === 4) {
    const [name, bytes, trips, rounds] = args as [string, string, string, string];
    await datapath(name, Number(bytes), Number(trips), Number(rounds));
  } else {
    process.stderr.write('usage: bench-guest latency PREFIX COUNT | datapath NAME BYTES TRIPS ROUNDS\n');
    process.exit(2);
  }
} catch (err) {
  console.log(`ERROR ${(err as Error).message}`);
  process.exit(1);
}
process.exit(0);
