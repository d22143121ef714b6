/*
 * The hostile-input corpus (issue 9): one table of bad or odd things a guest can meet (channel
 * names from test/fixtures/names.ts, xenstore nodes, devices, /run, udevadm), one runner that
 * puts each into a simulated guest beside a good channel with the real agent running, and
 * checks the same four promises every time: the good channel stays linked and reaches dom0,
 * the bad thing is logged in exactly the expected warn/error lines (once, not on every pass),
 * nothing unsafe is written (every link is ../hvcN under a valid name, every rules line has
 * the expected shape), and `xen-channel status` shows the problem. Faults that go away
 * (udevadm back, space freed) must then heal without a restart.
 * Takes about 10 s on the 2-core CI machine (measured 8 to 9 s in npm run test:fast).
 */
import { execFileSync } from 'node:child_process';
import { lstat, readdir, readFile, readlink, rm, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import t, { type Test } from 'tap';
import { waitForChannel } from '../../agent/api/channels.js';
import { openChannel } from '../../agent/api/open.js';
import { main } from '../../agent/cli/main.js';
import type { Clock } from '../../agent/clock.js';
import { systemClock } from '../../agent/clock.js';
import type { Env, Exec } from '../../agent/effects/env.js';
import { probeTty } from '../../agent/effects/node-env.js';
import { validateName } from '../../agent/model/names.js';
import { publishedPath, rulesPath } from '../../agent/reconcile.js';
import { Agent } from '../../agent/service/agent.js';
import type { SimulatedGuest } from '../../agent/sim/guest.js';
import type { SimRequest, SimRequestHook } from '../../agent/sim/xenstored/server.js';
import { XenstoreClient } from '../../agent/xenstore/client.js';
import { XsType } from '../../agent/xenstore/wire.js';
import { hostileNames } from '../fixtures/names.js';
import { fakeUdev } from '../helpers/fake-udev.js';
import { guestToDom0, linkTarget, recordingEnv, startGuest } from '../helpers/sim-guest.js';

const GOOD = 'org.example.good';

interface Ctx {
  readonly guest: SimulatedGuest;
  readonly env: Env & { lines: string[] };
  readonly agent: Agent;
  /** The guest's xenstore home. */
  readonly home: string;
  /** udev mode only: make every udevadm call fail like this until set back to undefined. */
  udevadm: 'missing' | 'failing' | undefined;
  /** Things the case started and the runner closes. */
  readonly cleanup: Array<() => Promise<void> | void>;
  /** Set by a case whose fault can go away: removes it; then `healed` links must appear without a restart. */
  heal?: () => Promise<void>;
}

interface HostileCase {
  readonly what: string;
  readonly linkMode?: 'udev';
  /** Before the agent starts (the good channel is plugged already). */
  readonly prepare?: (ctx: Pick<Ctx, 'guest' | 'home'>) => Promise<void>;
  /** Env changes for this case (a clock, the real tty probe). */
  readonly env?: Partial<Env>;
  /** The bad thing, done while the agent runs and the good channel is linked. */
  readonly act: (ctx: Ctx) => Promise<void>;
  /** The warn/error lines it must produce, each exactly once; none other. */
  readonly log: readonly RegExp[];
  /** What `xen-channel status` shows while the fault lasts. */
  readonly status: RegExp;
  /** Links (under the dev root) that must hold once the agent settled, with the fault still there. */
  readonly links?: Readonly<Record<string, string | undefined>>;
  readonly healed?: Readonly<Record<string, string | undefined>>;
  /** Extra checks of the case. */
  readonly check?: (t: Test, ctx: Ctx) => Promise<void>;
}

/** A clock 100 times faster than real time, so that a console's 10 s grace time passes in 0.1 s. */
function fastClock(): Clock {
  const t0 = performance.now();
  const e0 = Date.now();
  return {
    now: () => t0 + (performance.now() - t0) * 100,
    epochMs: () => e0 + (Date.now() - e0) * 100,
    sleep: (ms, signal) => systemClock.sleep(ms / 100, signal),
  };
}

/** Writes console `key`'s frontend nodes the way a toolstack would, without plugging anything. */
function writeConsole(ctx: Pick<Ctx, 'guest' | 'home'>, key: string, nodes: Record<string, string | Buffer>): void {
  for (const [node, value] of Object.entries(nodes)) {
    ctx.guest.xenstored.write(`${ctx.home}/device/console/${key}/${node}`, value);
  }
}

/** A request hook that acts once, on the first request `matches` accepts. */
function once(matches: (request: SimRequest) => boolean, then: () => 'drop' | undefined): SimRequestHook {
  let done = false;
  return (request) => {
    if (done || !matches(request)) return undefined;
    done = true;
    return then();
  };
}

const nameCases: HostileCase[] = hostileNames.map(([what, raw]) => ({
  what: `channel name: ${what}`,
  act: ({ guest }) => guest.plug(2, Buffer.from(raw)),
  log: [/^warn: channel devid 2: name ".*" rejected: /],
  status: /^2\s+\(rejected\)\s+Connected\s+hvc2\s+-\n\s+! name ".*" rejected: /m,
  links: { 'vport/org.example.two': undefined },
}));

/** udevadm `fault` while devid 2 is plugged: the error line, no link until udevadm is back. */
function udevadmCase(fault: 'missing' | 'failing', logLine: RegExp): HostileCase {
  return {
    what: `udevadm ${fault}`,
    linkMode: 'udev',
    act: async (ctx) => {
      ctx.udevadm = fault;
      ctx.heal = async () => {
        ctx.udevadm = undefined;
      };
      await ctx.guest.plug(2, 'org.example.two');
    },
    log: [logLine],
    status: /! \/dev\/vport\/org\.example\.two resolves to \(ENOENT\)/,
    links: { 'vport/org.example.two': undefined },
    healed: { 'vport/org.example.two': '../hvc2' },
  };
}

const cases: HostileCase[] = [
  ...nameCases,
  {
    what: 'channel name: equal to another channel',
    act: ({ guest }) => guest.plug(2, GOOD),
    log: [/^warn: channel org\.example\.good: name org\.example\.good is also used by devid 1, which keeps it$/],
    status: /^2\s+org\.example\.good\s+Connected\s+hvc2\s+-\n\s+! name org\.example\.good is also used by devid 1/m,
  },
  {
    what: 'channel name: changes while the channel is open',
    act: async (ctx) => {
      await ctx.guest.plug(2, 'org.example.before');
      const runDir = join(ctx.guest.roots.run, 'xen-channels');
      await waitForChannel('org.example.before', { runDir, timeoutMs: 10_000 });
      const app = await openChannel('org.example.before', { runDir });
      ctx.cleanup.push(() => void app.destroy());
      app.on('error', () => {});
      ctx.guest.xenstored.write(`${ctx.home}/device/console/2/name`, 'org.example.after');
    },
    log: [],
    status: /^2\s+org\.example\.after\s+Connected\s+hvc2\s+\/dev\/vport\/org\.example\.after/m,
    links: { 'vport/org.example.before': undefined, 'vport/org.example.after': '../hvc2' },
  },
  {
    what: 'xenstore: a console without a name node (a plain console, not a channel: no warning)',
    act: async ({ guest, home }) => {
      await guest.plug(2, 'org.example.two');
      guest.xenstored.rm(`${home}/device/console/2/name`);
    },
    log: [],
    status: /^2\s+\(no name\)\s+Connected\s+hvc2\s+-$/m,
    links: { 'vport/org.example.two': undefined },
  },
  {
    what: 'xenstore: a console without a state node',
    env: { clock: fastClock() },
    act: async (ctx) => writeConsole(ctx, '2', { name: 'org.example.nostate' }),
    log: [
      /^warn: channel org\.example\.nostate: stuck in no state node for more than 10 s: the backend in dom0 is not serving/,
    ],
    // status runs on the real clock, for which the grace time has not passed: the state shows.
    status: /^2\s+org\.example\.nostate\s+no state node\s+-\s+-$/m,
  },
  ...[
    ['non-numeric', 'abc', /"abc" is not a devid/],
    ['huge', '123456789012345678901234567890', /"123456789012345678901234567890" is not a devid/],
    ['0', '0', /devid 0 cannot work: .*refuses 0/],
    ['10', '10', /devid 10 cannot work: .*use a devid from 1 to 9/],
    ['13', '13', /devid 13 cannot work reliably: .*collides with devid 3/],
  ].map(
    ([what, key, reason]): HostileCase => ({
      what: `xenstore: devid ${what as string}`,
      act: (ctx) =>
        /^\d{1,2}$/.test(key as string)
          ? ctx.guest.plug(key as string, `org.example.d${key as string}`)
          : Promise.resolve(writeConsole(ctx, key as string, { name: `org.example.d${key as string}`, state: '1' })),
      log: [
        new RegExp(`^warn: channel org\\.example\\.d${(key as string).slice(0, 40)}: ${(reason as RegExp).source}`),
      ],
      status: new RegExp(
        `^${key as string}\\s+org\\.example\\.d${key as string}\\s+.*\\s+-\\n\\s+! ${(reason as RegExp).source}`,
        'm',
      ),
      links: { [`vport/org.example.d${key as string}`]: undefined },
    }),
  ),
  {
    what: 'xenstore: a console that vanishes between the listing and the read of its nodes',
    act: async (ctx) => {
      ctx.guest.xenstored.onRequest(
        once(
          (r) => r.domid === ctx.guest.domid && r.type === XsType.READ && r.path.endsWith('device/console/2/name'),
          () => {
            ctx.guest.xenstored.rm(`${ctx.home}/device/console/2`);
            return undefined;
          },
        ),
      );
      writeConsole(ctx, '2', { name: 'org.example.ghost', state: '1' });
    },
    log: [],
    status: /^1\s+org\.example\.good\s+Connected\s+hvc1\s+\/dev\/vport\/org\.example\.good \+2\n(?!2)/m,
    links: { 'vport/org.example.ghost': undefined },
  },
  {
    what: 'xenstore: EACCES on the name node',
    act: async ({ guest, home }) => {
      await guest.plug(2, 'org.example.secret');
      guest.xenstored.setPerms(`${home}/device/console/2/name`, [{ domid: 0, access: 'none' }]);
    },
    log: [
      /^warn: channel devid 2: xenstore refuses the guest read access to device\/console\/2\/name \(EACCES\): the toolstack set wrong permissions$/,
    ],
    status:
      /^2\s+\(no name\)\s+Connected\s+hvc2\s+-\n\s+! xenstore refuses the guest read access to device\/console\/2\/name \(EACCES\)/m,
    links: { 'vport/org.example.secret': undefined },
  },
  {
    what: "xenstore: the agent's connection drops in the middle of a pass",
    act: async (ctx) => {
      ctx.guest.xenstored.onRequest(
        once(
          (r) => r.domid === ctx.guest.domid && r.type === XsType.READ && r.path.endsWith('device/console/2/name'),
          () => 'drop',
        ),
      );
      await ctx.guest.plug(2, 'org.example.two');
    },
    log: [/^warn: xenstore connection lost \(.*\); reconnecting in \d+ ms \(attempt 1\)$/],
    status: /^2\s+org\.example\.two\s+Connected\s+hvc2\s+\/dev\/vport\/org\.example\.two/m,
    links: { 'vport/org.example.two': '../hvc2' },
  },
  {
    what: "xenstore: the toolstack's connection drops in the middle of its transaction",
    act: async (ctx) => {
      const dom0 = await XenstoreClient.connect({ transport: ctx.guest.xenstored.transport({ domid: 0 }) });
      ctx.cleanup.push(() => dom0.close());
      ctx.guest.xenstored.onRequest(
        once(
          (r) => r.domid === 0 && r.type === XsType.TRANSACTION_END,
          () => 'drop',
        ),
      );
      const front = `${ctx.home}/device/console/2`;
      const plug = dom0.transaction(async (tx) => {
        await tx.write(`${front}/name`, 'org.example.half');
        await tx.write(`${front}/state`, '1');
      });
      await plug.then(
        () => Promise.reject(new Error('the transaction should have failed')),
        () => {},
      );
      ctx.agent.trigger(); // nothing changed in xenstore, so no watch fires: look anyway
    },
    log: [],
    status: /^1\s+org\.example\.good\s+Connected\s+hvc1\s+\S+ \+2\n(?!2)/m,
    check: async (t, { guest, home }) => {
      t.equal(
        guest.xenstored.read(`${home}/device/console/2/name`),
        undefined,
        'nothing of the transaction was committed',
      );
    },
  },
  {
    what: '/dev/hvcN nodes with no console behind them (open fails: ENXIO, as ENODEV on Xen)',
    env: { probeTty },
    prepare: async ({ guest }) => {
      // Static nodes for every free slot, as on a real guest (here: a char device with no driver).
      for (let slot = 2; slot < 8; slot++)
        execFileSync('mknod', [join(guest.roots.dev, `hvc${slot}`), 'c', '240', '0']);
    },
    act: ({ guest }) => guest.plug(2, 'org.example.two'),
    log: [],
    status: /^2\s+org\.example\.two\s+Connected\s+hvc2\s+\/dev\/vport\/org\.example\.two/m,
    links: { 'vport/org.example.two': '../hvc2' },
  },
  {
    what: 'device: hang-up while an application reads and writes',
    act: async (ctx) => {
      await ctx.guest.plug(2, 'org.example.busy');
      const runDir = join(ctx.guest.roots.run, 'xen-channels');
      await waitForChannel('org.example.busy', { runDir, timeoutMs: 10_000 });
      const app = await openChannel('org.example.busy', { runDir });
      const ended = new Promise<Error>((resolve) => app.once('error', resolve));
      app.resume();
      const writer = setInterval(() => app.writable && app.write('tick\n'), 2);
      ctx.cleanup.push(() => clearInterval(writer));
      await ctx.guest.unplug(2);
      const error = await ended;
      clearInterval(writer);
      if (error.name !== 'ChannelHangupError') throw error;
    },
    log: [],
    status: /^1\s+org\.example\.good\s+Connected\s+hvc1\s+\S+ \+2\n(?!2)/m,
    links: { 'vport/org.example.busy': undefined },
  },
  {
    what: '/run full (ENOSPC) while a channel is plugged, udev mode',
    linkMode: 'udev',
    act: async (ctx) => {
      // The rules file's temporary file is /dev/full: the write fails with ENOSPC as on a full /run.
      const temporary = `${rulesPath(ctx.env)}.tmp-${process.pid}`;
      let full = true;
      const arm = () => symlink('/dev/full', temporary).catch(() => {});
      await arm();
      ctx.agent.on('failed', () => void (full ? arm() : undefined));
      ctx.cleanup.push(() => rm(temporary, { force: true }));
      ctx.heal = async () => {
        full = false;
        await rm(temporary, { force: true });
      };
      await ctx.guest.plug(2, 'org.example.two');
    },
    log: [
      /^error: could not update the channel links: cannot write .*61-xen-channels-links\.rules: ENOSPC .*; retrying in 1 s$/,
    ],
    status:
      /^2\s+org\.example\.two\s+Connected\s+hvc2\s+\/dev\/vport\/org\.example\.two.*\n\s+! \/dev\/vport\/org\.example\.two resolves to \(ENOENT\)/m,
    links: { 'vport/org.example.two': undefined },
    healed: { 'vport/org.example.two': '../hvc2' },
  },
  udevadmCase(
    'missing',
    /^error: could not update the channel links: udevadm control --reload could not be started \(spawn udevadm ENOENT\); is udev installed\? \(or run with --no-udev\); retrying in 1 s$/,
  ),
  udevadmCase(
    'failing',
    /^error: could not update the channel links: udevadm control --reload exited with 1: .*udev did not reload its rules; retrying in 1 s$/,
  ),
];

/** Polls `check` every 10 ms until it holds; fails after 10 s (a bound, not a timing assertion). */
async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`not within 10 s: ${what}`);
}

async function linksHold(guest: SimulatedGuest, links: Readonly<Record<string, string | undefined>>): Promise<boolean> {
  for (const [rel, target] of Object.entries(links)) if ((await linkTarget(guest, rel)) !== target) return false;
  return true;
}

async function status(guest: SimulatedGuest): Promise<string> {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  const streams = { stdin: new PassThrough(), stdout, stderr: new PassThrough() };
  const code = await main(['status', '--root', dirname(guest.roots.run), '--no-udev'], streams);
  if (code !== 0) throw new Error(`status exited with ${code}`);
  return Buffer.concat(chunks).toString();
}

/** Every entry in the link directories is one of ours: a valid name, a link to ../hvcN. */
async function unsafeEntries(guest: SimulatedGuest, env: Env): Promise<string[]> {
  const bad: string[] = [];
  for (const dir of env.linkDirs) {
    const names = await readdir(join(guest.roots.dev, dir)).catch(() => [] as string[]);
    for (const name of names) {
      const target = await readlink(join(guest.roots.dev, dir, name)).catch(() => '(not a link)');
      if (!validateName(Buffer.from(name, 'latin1')).ok || !/^\.\.\/hvc[0-7]$/.test(target))
        bad.push(`${dir}/${name} -> ${target}`);
    }
  }
  for (const entry of await readdir(guest.roots.dev)) {
    if (!/^(hvc[0-7]|xen)$/.test(entry) && !env.linkDirs.includes(entry)) bad.push(`dev/${entry}`);
  }
  const rules = await readFile(rulesPath(env), 'utf8').catch(() => '');
  const rule =
    /^SUBSYSTEM=="tty", KERNEL=="hvc[0-7]", ENV\{XEN_CHANNEL_NAME\}="[A-Za-z0-9._-]+", ENV\{XEN_CHANNEL_DEVID\}="[1-9]"(, SYMLINK\+="[a-z-]+\/[A-Za-z0-9._-]+")+, TAG\+="systemd"$/;
  for (const line of rules.split('\n')) {
    if (line !== '' && !line.startsWith('# ') && !rule.test(line)) bad.push(`rules: ${line}`);
  }
  const published = await readFile(publishedPath(env), 'utf8');
  JSON.parse(published); // a whole file, never a torn one
  return bad;
}

for (const c of cases) {
  t.test(c.what, async (t) => {
    const guest = await startGuest(t);
    const home = `/local/domain/${guest.domid}`;
    await guest.plug(1, GOOD);
    await c.prepare?.({ guest, home });
    const base = recordingEnv(guest, c.env);
    let ctxRef: Ctx | undefined;
    let env: Env & { lines: string[] } = base;
    if (c.linkMode === 'udev') {
      const udev = fakeUdev(guest.roots, rulesPath(base));
      const exec: Exec = {
        run: async (command, args, options) => {
          if (ctxRef?.udevadm === 'missing')
            throw Object.assign(new Error(`spawn ${command} ENOENT`), { code: 'ENOENT' });
          if (ctxRef?.udevadm === 'failing') udev.failNext(args[0] ?? '', 1);
          return udev.run(command, args, options);
        },
      };
      env = Object.assign(base, { exec, linkMode: 'udev' as const });
    }
    const agent = await Agent.start(env);
    const ctx: Ctx = {
      guest,
      env,
      agent,
      home,
      udevadm: undefined,
      cleanup: [],
    };
    ctxRef = ctx;
    t.teardown(async () => {
      guest.xenstored.onRequest(undefined);
      for (const fn of ctx.cleanup.reverse()) await fn();
      await agent.stop();
    });
    let passes = 0;
    let linked = false;
    agent.on('reconciled', (r) => {
      passes++;
      linked ||= r.channels.some((c) => c.name === GOOD && c.links.length > 0);
    });
    agent.on('failed', () => passes++);
    await until(() => linked, 'a first pass links the good channel');
    const quietBefore = env.lines.filter((l) => /^(warn|error):/.test(l));
    t.same(quietBefore, [], 'a clean start');

    const passesBefore = passes;
    await c.act(ctx);
    const problems = () => env.lines.filter((l) => /^(warn|error):/.test(l));
    await until(
      async () =>
        passes > passesBefore &&
        c.log.every((re) => problems().some((l) => re.test(l))) &&
        (await linksHold(guest, c.links ?? {})),
      'the agent settled on the bad input',
    ).catch((err: Error) => {
      throw new Error(`${err.message}; the log:\n${env.lines.join('\n')}`);
    });
    for (const re of c.log) t.equal(problems().filter((l) => re.test(l)).length, 1, `one line: ${re.source}`);
    t.same(
      problems().filter((l) => !c.log.some((re) => re.test(l))),
      [],
      'no other warning or error',
    );
    t.match(await status(guest), c.status, 'status shows it');
    t.equal(await linkTarget(guest, `vport/${GOOD}`), '../hvc1', 'the good channel keeps its link');
    t.same(await unsafeEntries(guest, env), [], 'nothing unsafe written');

    if (ctx.heal) {
      await ctx.heal();
      await until(() => linksHold(guest, c.healed ?? {}), 'healed without a restart');
    } else {
      const seen = problems().length;
      const again = passes;
      agent.trigger();
      await until(() => passes > again, 'one more pass');
      t.equal(problems().length, seen, 'the next pass logs nothing again');
    }
    await c.check?.(t, ctx);
    const seen = await guestToDom0(guest, join(guest.roots.dev, 'vport', GOOD), 1, 'still served');
    t.match(seen, 'still served', 'the good channel still reaches dom0');
    await agent.stop(); // lets a pass in flight finish: what is left is what stays
    t.same(await unsafeEntries(guest, env), [], 'nothing unsafe at the end either');
    for (const entry of await readdir(join(guest.roots.run, 'xen-channels'))) {
      const stat = await lstat(join(guest.roots.run, 'xen-channels', entry));
      t.ok(stat.isFile() || stat.isSocket(), `run/xen-channels/${entry} is a plain file`);
    }
  });
}
