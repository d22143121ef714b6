#!/usr/bin/env node
/*
 * `npm run bench`: the performance figures of xen-channels on the simulated guest, as JSON on
 * stdout (and saved under bench/results/ with a description of the machine). Every figure is
 * the median over --rounds repeated rounds; nothing here is a pass/fail test.
 *   hotplug_to_link_ms   from the frontend reaching Initialised (the kernel allocated the
 *                        tty) to /dev/vport/<name> resolving, with the agent running: p50, p99
 *   agent_rss_kib        resident memory of `xen-channel agent` with 0 and with 7 channels,
 *                        and of a bare Node process (baseline_node)
 *   agent_idle           CPU time and context switches of the agent over --idle-seconds
 *                        with nothing happening, from 15 s after start-up (target: no periodic
 *                        wake-ups), next to a bare Node process; after_start: the one-off
 *                        GC of V8's memory reducer in the first 15 s
 *   udev_helper_cold_start_ms   `xen-channel udev-event`, process start to exit
 *   data_path            openChannel() against the raw device used directly (cfmakeraw, a tty
 *                        read stream, fs.write) on the same channel: throughput both ways and
 *                        round-trip latency, with the ratios (target >= 0.95)
 *   real_xen             the same hotplug latency and data path (as an echo through dom0) on
 *                        real Xen: the test/e2e scenario bench-real-xen, timed in the guest
 * Usage: npm run bench -- [--rounds N] [--idle-seconds S] [--quick] [--xen | --no-xen]
 *   (the real-Xen part runs by default, not with --quick; it needs what test/e2e needs)
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { watch } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = new URL('..', import.meta.url).pathname;
const dist = (p) => join(root, 'dist', 'agent', p);
const cli = dist('cli/main.js');
const { SimulatedGuest, simEnv } = await import(dist('sim/guest.js'));
const { Agent } = await import(dist('service/agent.js'));
const { openChannel, setRawMode } = await import(dist('api/open.js'));
const { reconcile } = await import(dist('reconcile.js'));
const { XenstoreClient } = await import(dist('xenstore/client.js'));
const { median, openRawDevice, openStream } = await import('./lib/channel-sides.mjs');

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    'idle-seconds': { type: 'string' },
    quick: { type: 'boolean' },
    xen: { type: 'boolean' },
    'no-xen': { type: 'boolean' },
  },
});
const quick = values.quick ?? false;
const ROUNDS = Number(values.rounds ?? (quick ? 1 : 3));
const IDLE_SECONDS = Number(values['idle-seconds'] ?? (quick ? 5 : 60));
const REAL_XEN = values['no-xen'] ? false : (values.xen ?? !quick);
const quiet = { log: () => {} };
const progress = (text) => process.stderr.write(`bench: ${text}\n`);

const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const round2 = (x) => Math.round(x * 100) / 100;

async function withGuest(fn) {
  const dir = await mkdtemp(join(tmpdir(), 'xcb-'));
  const guest = await SimulatedGuest.start({ root: dir });
  try {
    return await fn(guest, dir);
  } finally {
    await guest.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Resolves when `rel` under the dev root resolves, noticed through a directory watch. */
function linkAppears(devRoot, rel) {
  const dir = join(devRoot, rel, '..');
  return new Promise((resolve) => {
    let watcher;
    const check = async () => {
      if (await readlink(join(devRoot, rel)).then(() => true, () => false)) {
        watcher?.close();
        resolve(performance.now());
        return true;
      }
      return false;
    };
    mkdir(dir, { recursive: true }).then(async () => {
      watcher = watch(dir, () => void check());
      await check();
    });
  });
}

async function hotplugLatency(samples) {
  return withGuest(async (guest) => {
    const env = simEnv(guest, { log: quiet });
    const agent = await Agent.start(env);
    const dom0 = await XenstoreClient.connect({ transport: guest.xenstored.transport({ domid: 0 }) });
    const front = `/local/domain/${guest.domid}/device/console`;
    const watchFrontends = await dom0.watch(front);
    const allocated = new Map();
    void (async () => {
      for await (const event of watchFrontends) {
        const m = /\/console\/(\d)\/state$/.exec(event.path);
        if (!m || allocated.has(m[1])) continue;
        const state = await dom0.read(event.path).catch(() => '');
        if (state === '3' || state === '4') allocated.set(m[1], performance.now());
      }
    })().catch(() => {});
    const latencies = [];
    try {
      for (let i = 0; i < samples; i++) {
        const name = `bench.hotplug.${i}`;
        allocated.delete('1');
        const linked = linkAppears(guest.roots.dev, `vport/${name}`);
        await guest.plug(1, name);
        const t1 = await linked;
        latencies.push(Math.max(0, t1 - (allocated.get('1') ?? t1)));
        await guest.unplug(1);
      }
    } finally {
      await watchFrontends.close();
      await dom0.close();
      await agent.stop();
    }
    return latencies;
  });
}

function procStatus(pid) {
  return readFile(`/proc/${pid}/status`, 'utf8').then((t) => Object.fromEntries(t.split('\n').map((l) => l.split(/:\s+/))));
}

async function cpuAndSwitches(pid) {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]); // utime + stime (fields 14, 15)
  let switches = 0;
  for (const task of await readdir(`/proc/${pid}/task`)) {
    const s = await readFile(`/proc/${pid}/task/${task}/status`, 'utf8').catch(() => '');
    for (const m of s.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) switches += Number(m[1]);
  }
  const hz = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  return { cpuMs: (ticks * 1000) / hz, switches };
}

/**
 * V8's memory reducer runs one or two full GCs about 8 s after a burst of allocation (the
 * start-up, a reconcile pass), using its worker threads: measured with --trace-gc and per-task
 * context switches (docs/performance.md). The idle window starts after this long, and the
 * one-off is reported on its own.
 */
const AFTER_START_SECONDS = 15;

/** CPU and context switches of each process over the after-start window, then the idle window. */
async function idleWindows(pids) {
  const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));
  const t0 = await Promise.all(pids.map(cpuAndSwitches));
  await sleep(AFTER_START_SECONDS);
  const t1 = await Promise.all(pids.map(cpuAndSwitches));
  await sleep(IDLE_SECONDS);
  const t2 = await Promise.all(pids.map(cpuAndSwitches));
  return pids.map((_, i) => ({
    afterStartCpuMs: t1[i].cpuMs - t0[i].cpuMs,
    afterStartSwitches: t1[i].switches - t0[i].switches,
    idleCpuMs: t2[i].cpuMs - t1[i].cpuMs,
    idleSwitches: t2[i].switches - t1[i].switches,
  }));
}

/**
 * Runs `xen-channel agent --root` as its own process with `channels` channels and, beside it,
 * a bare Node process that only keeps a timer pending (the baseline: what Node itself costs);
 * measures both over the same windows.
 */
async function agentProcess(channels) {
  return withGuest(async (guest, dir) => {
    for (let d = 1; d <= channels; d++) await guest.plug(d, `bench.channel.${d}`);
    const child = spawn(process.execPath, [cli, 'agent', '--root', dir, '--no-udev'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const baseline = spawn(process.execPath, ['-e', 'setInterval(() => {}, 2 ** 30)'], { stdio: 'ignore' });
    let log = '';
    child.stderr.on('data', (c) => {
      log += c;
    });
    try {
      if (channels > 0) await linkAppears(guest.roots.dev, `vport/bench.channel.${channels}`);
      else await new Promise((resolve) => setTimeout(resolve, 2000)); // its start-up pass
      const [agent, bare] = await idleWindows([child.pid, baseline.pid]);
      const rssKib = async (pid) => Number.parseInt((await procStatus(pid)).VmRSS, 10);
      return { rssKib: await rssKib(child.pid), baselineRssKib: await rssKib(baseline.pid), agent, baseline: bare };
    } finally {
      baseline.kill('SIGKILL');
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      if (child.exitCode !== 0 && child.signalCode === null && log) progress(`agent said: ${log.slice(-300)}`);
    }
  });
}

async function udevHelperColdStart(runs) {
  return withGuest(async (guest, dir) => {
    for (let d = 1; d <= 3; d++) await guest.plug(d, `bench.udev.${d}`);
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [cli, 'udev-event', '--root', dir, '--no-udev'], { stdio: 'ignore' });
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`udev-event exited with ${code}`))));
      });
      times.push(performance.now() - t0);
    }
    return times;
  });
}

function dom0Socket(path) {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** guest->host and host->guest throughput (MiB/s) and 64-byte round trips (ms) for one way of using the channel. */
async function dataPath(guest, side, devid, bytes, trips) {
  const socket = await dom0Socket(guest.socketPath(devid));
  // The simulator's socat serves one client at a time, but the previous client's bridge
  // process takes a moment to exit, and reads the tty meanwhile: let it go first.
  await new Promise((resolve) => setTimeout(resolve, 300));
  let received = 0;
  let onHost = () => {};
  socket.on('data', (c) => {
    received += c.length;
    onHost(c);
  });
  const payload = randomBytes(bytes);
  // guest -> host
  let t0 = performance.now();
  const allHere = new Promise((resolve) => {
    onHost = () => received >= bytes && resolve();
  });
  await side.write(payload);
  await allHere;
  const upMiBps = bytes / 1048576 / ((performance.now() - t0) / 1000);
  // host -> guest
  let got = 0;
  let done = () => {};
  side.onData((c) => {
    got += c.length;
    if (got >= bytes) done();
  });
  const allThere = new Promise((resolve) => {
    done = resolve;
  });
  t0 = performance.now();
  socket.write(payload);
  await allThere;
  const downMiBps = bytes / 1048576 / ((performance.now() - t0) / 1000);
  // round trips: host sends 64 bytes, the guest side echoes them
  got = 0;
  let echoed = () => {};
  side.onData((c) => {
    void side.write(c);
  });
  const rtts = [];
  for (let i = 0; i < trips; i++) {
    received = 0;
    const back = new Promise((resolve) => {
      echoed = resolve;
    });
    onHost = () => received >= 64 && echoed();
    const t = performance.now();
    socket.write(randomBytes(64));
    await back;
    rtts.push(performance.now() - t);
  }
  socket.destroy();
  return { upMiBps, downMiBps, rttMs: median(rtts) };
}

async function dataPathRound(bytes, trips) {
  return withGuest(async (guest) => {
    await guest.plug(1, 'bench.data');
    const env = simEnv(guest, { log: quiet });
    const xs = await XenstoreClient.connect({ transport: env.xenstore });
    await reconcile(env, xs);
    await xs.close();
    const runDir = join(guest.roots.run, 'xen-channels');
    const results = {};
    for (const [label, make] of [
      ['openChannel', () => openStream(openChannel, 'bench.data', { runDir })],
      ['raw', () => openRawDevice(join(guest.roots.dev, 'hvc1'), setRawMode)],
    ]) {
      const side = await make();
      try {
        results[label] = await dataPath(guest, side, 1, bytes, trips);
      } finally {
        await side.close();
      }
    }
    return results;
  });
}

const results = {};
const rounds = Array.from({ length: ROUNDS }, (_, i) => i);

progress(`hotplug -> link latency, ${ROUNDS} round(s)`);
const latencyRounds = [];
for (const _ of rounds) latencyRounds.push(await hotplugLatency(quick ? 10 : 30));
results.hotplug_to_link_ms = {
  definition: 'frontend Initialised (hvc allocated) -> /dev/vport/<name> resolves, agent running, simulated guest',
  p50: round2(median(latencyRounds.map((r) => percentile(r, 50)))),
  p99: round2(median(latencyRounds.map((r) => percentile(r, 99)))),
  samples_per_round: latencyRounds[0]?.length,
};

progress(`agent process with 0 and 7 channels, ${AFTER_START_SECONDS} + ${IDLE_SECONDS} s each, ${ROUNDS} round(s)`);
const agentRounds = { 0: [], 7: [] };
for (const _ of rounds) for (const n of [0, 7]) agentRounds[n].push(await agentProcess(n));
const perChannels = (f) => Object.fromEntries([0, 7].map((n) => [`channels_${n}`, round2(median(agentRounds[n].map(f)))]));
results.agent_rss_kib = { ...perChannels((r) => r.rssKib), baseline_node: median(agentRounds[0].map((r) => r.baselineRssKib)) };
results.agent_idle = {
  definition: `CPU time and context switches (all threads) over ${IDLE_SECONDS} s with nothing happening, from ${AFTER_START_SECONDS} s after start-up`,
  seconds: IDLE_SECONDS,
  cpu_ms: perChannels((r) => r.agent.idleCpuMs),
  context_switches: perChannels((r) => r.agent.idleSwitches),
  baseline_node: {
    definition: 'node -e "setInterval(() => {}, 2 ** 30)", measured over the same windows',
    cpu_ms: round2(median(agentRounds[0].map((r) => r.baseline.idleCpuMs))),
    context_switches: median(agentRounds[0].map((r) => r.baseline.idleSwitches)),
  },
  after_start: {
    definition: `the first ${AFTER_START_SECONDS} s after start-up (one-off: V8's memory reducer GC)`,
    cpu_ms: perChannels((r) => r.agent.afterStartCpuMs),
    context_switches: perChannels((r) => r.agent.afterStartSwitches),
  },
};

progress('udev helper cold start');
const coldRounds = [];
for (const _ of rounds) coldRounds.push(median(await udevHelperColdStart(quick ? 3 : 10)));
results.udev_helper_cold_start_ms = { median: round2(median(coldRounds)) };

progress('data path: openChannel() against the raw device');
const dataRounds = [];
for (const _ of rounds) dataRounds.push(await dataPathRound(quick ? 1 << 20 : 8 << 20, quick ? 50 : 200));
const pick = (label, key) => median(dataRounds.map((r) => r[label][key]));
results.data_path = {
  transport: 'pty bridged by socat (simulated guest)',
  guest_to_host_MiBps: { openChannel: round2(pick('openChannel', 'upMiBps')), raw: round2(pick('raw', 'upMiBps')) },
  host_to_guest_MiBps: { openChannel: round2(pick('openChannel', 'downMiBps')), raw: round2(pick('raw', 'downMiBps')) },
  round_trip_ms: { openChannel: round2(pick('openChannel', 'rttMs')), raw: round2(pick('raw', 'rttMs')) },
};
results.data_path.ratio = {
  guest_to_host: round2(pick('openChannel', 'upMiBps') / pick('raw', 'upMiBps')),
  host_to_guest: round2(pick('openChannel', 'downMiBps') / pick('raw', 'downMiBps')),
  round_trip_speed: round2(pick('raw', 'rttMs') / pick('openChannel', 'rttMs')),
};

/**
 * The real-Xen figures: runs the bench-real-xen scenario in the project's harness (Xen + Linux
 * dom0 + a Debian guest under QEMU) and reads the lines its guest program printed.
 */
async function realXen() {
  const run = (cmd, args, env = {}) =>
    execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env } });
  run('bash', ['packaging/build-deb.sh']);
  try {
    run('bash', ['test/e2e/run.sh', 'bench-real-xen'], { E2E_KEEP_ARTIFACTS: '1' });
  } catch {
    return { error: 'the bench-real-xen scenario failed: see test/e2e/out/bench-real-xen/' };
  }
  const log = await readFile(join(root, 'test', 'e2e', 'out', 'bench-real-xen', 'steps.log'), 'utf8');
  const last = (tag) => [...log.matchAll(new RegExp(`${tag} (\\{.*\\})`, 'g'))].map((m) => JSON.parse(m[1])).pop();
  const latency = last('LATENCY');
  const data = last('DATAPATH');
  return {
    environment: 'Xen 4.17, Linux 6.1 Debian 12 guest, under QEMU TCG (software emulation) on this machine',
    hotplug_to_link_ms: latency && {
      definition: 'frontend Connected (seen by a guest xenstore watch) -> /dev/vport/<name> resolves, .deb agent + udev',
      ...latency,
    },
    data_path: data && { transport: 'Xen PV console ring, echoed by socat in dom0', ...data },
  };
}

if (REAL_XEN) {
  progress('real Xen: the bench-real-xen scenario of test/e2e (several minutes)');
  results.real_xen = await realXen();
}

const report = {
  date: new Date().toISOString(),
  machine: {
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: (await readFile('/proc/sys/kernel/osrelease', 'utf8')).trim(),
  },
  rounds: ROUNDS,
  results,
};
const json = `${JSON.stringify(report, null, 2)}\n`;
process.stdout.write(json);
await mkdir(join(root, 'bench', 'results'), { recursive: true });
await writeFile(join(root, 'bench', 'results', `${quick ? 'quick-' : ''}${report.date.replace(/[:.]/g, '-')}.json`), json);
