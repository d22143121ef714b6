/*
 * The two ways a program can use a channel, for the data-path benchmarks (bench/run.mjs on
 * the simulated guest, test/e2e/node/bench-guest.ts on real Xen): openChannel()'s stream,
 * and the raw device used directly as an expert would without xen-channels (the tty in
 * cfmakeraw mode, read through libuv's tty handle, written with fs.write). Each side is
 * { onData(listener), write(buffer): Promise, close(): Promise }. The project's functions
 * are passed in, so that the same code runs against dist/ and against the bundled sources.
 * Also the echo measurement used on real Xen, where the peer in dom0 echoes every byte.
 */
import { randomBytes } from 'node:crypto';
import { constants, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { ReadStream } from 'node:tty';

export async function openRawDevice(tty, setRawMode) {
  // A plain descriptor for the tty stream, which takes it over and closes it.
  const inputFd = openSync(tty, constants.O_RDWR | constants.O_NOCTTY);
  const output = await open(tty, constants.O_WRONLY | constants.O_NOCTTY);
  await setRawMode(inputFd, tty);
  const reader = new ReadStream(inputFd);
  return {
    onData: (listener) => reader.on('data', listener),
    write: async (data) => {
      let off = 0;
      while (off < data.length) off += (await output.write(data, off, data.length - off)).bytesWritten;
    },
    close: async () => {
      reader.destroy();
      await output.close().catch(() => {});
    },
  };
}

export async function openStream(openChannel, name, options) {
  const stream = await openChannel(name, options);
  return {
    onData: (listener) => stream.on('data', listener),
    write: (data) => new Promise((resolve, reject) => stream.write(data, (err) => (err ? reject(err) : resolve()))),
    close: async () => stream.destroy(),
  };
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * With a peer that echoes every byte: `bytes` random bytes written while the echo is read
 * back (MiB/s of payload, each byte crossing the channel twice), then `trips` 64-byte round
 * trips (median ms). Resolves with { echoMiBps, rttMs }.
 */
export async function echoMeasure(side, bytes, trips) {
  let got = 0;
  let want = 0;
  let arrived = () => {};
  side.onData((chunk) => {
    got += chunk.length;
    if (got >= want) arrived();
  });
  const exchange = async (data) => {
    got = 0;
    want = data.length;
    const back = new Promise((resolve) => {
      arrived = resolve;
    });
    await side.write(data);
    await back;
  };
  let t0 = performance.now();
  await exchange(randomBytes(bytes));
  const echoMiBps = bytes / 1048576 / ((performance.now() - t0) / 1000);
  const rtts = [];
  for (let i = 0; i < trips; i++) {
    t0 = performance.now();
    await exchange(randomBytes(64));
    rtts.push(performance.now() - t0);
  }
  return { echoMiBps, rttMs: median(rtts) };
}
