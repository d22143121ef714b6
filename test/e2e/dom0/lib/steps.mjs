// The scenario step vocabulary: one async function per action key, called by the runner
// with (arg, step, ctx). Effect layer: drives the guest (ctx.guest), dom0 commands,
// xenstore (ctx.xs), QMP and channel sockets; it never tears the guest down (the runner
// does). A step throws an Error whose message is the failure reason; it logs what it
// saw through ctx.log. To add an action: add a function here and document it in README.
import { spawn } from 'node:child_process';
import { ChannelConnection } from './channel.mjs';
import { qmp } from './qmp.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const clip = (s, n = 2000) => (s.length > n ? `${s.slice(0, n)}... (${s.length} bytes)` : s);
const asList = (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const script = (cmd) => (Array.isArray(cmd) ? cmd.join('\n') : String(cmd));

/** Run a shell script in dom0; {code, stdout, stderr}; killed (code 124) after limitS. */
export function runDom0(cmd, limitS, env) {
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', cmd], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '',
      killed = false;
    p.stdout.on('data', (d) => {
      stdout += d;
    });
    p.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      killed = true;
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {}
    }, limitS * 1000);
    // 'close' waits for the pipes; a daemon child that kept them (xl's own monitor
    // closes them) must not hold the step, so 'exit' resolves half a second later.
    const done = (code) => {
      clearTimeout(timer);
      resolve({ code: killed ? 124 : (code ?? 128), stdout, stderr });
    };
    p.on('close', done);
    p.on('exit', (code) => setTimeout(() => done(code), 500));
  });
}

// ---------------------------------------------------------------- expectations

/** Does `actual` contain `expected`? Objects: every expected key; arrays: every expected
 *  element matches a distinct actual element (any order); scalars: strict equality. */
export function jsonSubset(actual, expected) {
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return false;
    const used = new Set();
    return expected.every((e) => {
      const i = actual.findIndex((a, k) => !used.has(k) && jsonSubset(a, e));
      if (i < 0) return false;
      used.add(i);
      return true;
    });
  }
  if (expected !== null && typeof expected === 'object') {
    return (
      actual !== null &&
      typeof actual === 'object' &&
      !Array.isArray(actual) &&
      Object.entries(expected).every(([k, v]) => k in actual && jsonSubset(actual[k], v))
    );
  }
  return actual === expected;
}

/** Check one output stream against a spec (string = regex, or {match, contains, equals, json}). */
function checkStream(label, text, spec) {
  if (spec === undefined) return null;
  const s = typeof spec === 'string' ? { match: spec } : spec;
  for (const re of asList(s.match)) {
    if (!new RegExp(re, 'm').test(text)) return `${label} does not match /${re}/`;
  }
  for (const c of asList(s.contains)) {
    if (!text.includes(c)) return `${label} does not contain ${JSON.stringify(c)}`;
  }
  if (s.equals !== undefined && text.replace(/\s+$/, '') !== s.equals) {
    return `${label} is not ${JSON.stringify(s.equals)}`;
  }
  if (s.json !== undefined) {
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      return `${label} is not JSON (${e.message})`;
    }
    if (!jsonSubset(parsed, s.json)) return `${label} JSON does not contain ${JSON.stringify(s.json)}`;
  }
  return null;
}

/** null when res meets the step's exit/stdout/stderr expectations, else the reason. */
function checkResult(res, spec) {
  const exit = spec.exit ?? 0;
  if (exit !== 'any' && res.code !== exit) return `exit code ${res.code}, expected ${exit}`;
  return checkStream('stdout', res.stdout, spec.stdout) ?? checkStream('stderr', res.stderr, spec.stderr);
}

async function runCommand(where, cmd, limitS, ctx) {
  const t0 = Date.now();
  const res =
    where === 'guest' ? await ctx.guest.run(script(cmd), limitS) : await runDom0(script(cmd), limitS, ctx.dom0Env);
  ctx.log(`  ${where} exit=${res.code} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (res.stdout) ctx.log(`  stdout: ${clip(res.stdout)}`);
  if (res.stderr) ctx.log(`  stderr: ${clip(res.stderr)}`);
  return res;
}

async function command(where, arg, step, ctx) {
  const res = await runCommand(where, arg, step.timeout ?? 60, ctx);
  const why = checkResult(res, step);
  if (why)
    throw new Error(
      `${why}; stdout ${JSON.stringify(clip(res.stdout, 300))}; stderr ${JSON.stringify(clip(res.stderr, 300))}`,
    );
  if (step.report) {
    const line = clip(res.stdout.trim().split('\n')[0] ?? '', 300);
    process.stdout.write(`E2E-PROGRESS ${ctx.name}: ${step.name ?? where}: ${line}\n`);
  }
}

// ---------------------------------------------------------------- channels

function socketOf(arg, ctx) {
  if (arg.socket) return arg.socket;
  const s = ctx.socketByName.get(arg.channel);
  if (!s) throw new Error(`unknown channel ${JSON.stringify(arg.channel)}`);
  return s;
}

async function connection(path, ctx, timeoutS) {
  let c = ctx.conns.get(path);
  if (!c || c.closed) {
    c = await ChannelConnection.open(path, timeoutS);
    ctx.conns.set(path, c);
  }
  return c;
}

function closeConnection(path, ctx) {
  ctx.conns.get(path)?.close();
  ctx.conns.delete(path);
}

// ---------------------------------------------------------------- hot-plug

const fePath = (ctx, devid) => `/local/domain/${ctx.domid}/device/console/${devid}`;
const bePath = (ctx, devid) => `/local/domain/0/backend/console/${ctx.domid}/${devid}`;

async function waitState(ctx, path, want, timeoutS) {
  const deadline = Date.now() + timeoutS * 1000;
  let last;
  while (Date.now() < deadline) {
    last = await ctx.xs.read(path, '(none)');
    if (last === want) return;
    await sleep(200);
  }
  throw new Error(`${path} is ${last} after ${timeoutS} s, expected ${want}`);
}

/** QMP chardev-add, then ONE transaction with libxl's frontend and backend nodes. */
async function plug(arg, step, ctx) {
  const { devid, name, socket } = arg;
  if (!Number.isInteger(devid) || devid < 1) throw new Error(`plug: devid must be a positive integer, got ${devid}`);
  const D = ctx.domid,
    F = fePath(ctx, devid),
    B = bePath(ctx, devid),
    chardev = `e2e-ch${devid}`;
  await qmp(ctx.qmpPath, [
    {
      execute: 'chardev-add',
      arguments: {
        id: chardev,
        backend: {
          type: 'socket',
          data: { addr: { type: 'unix', data: { path: socket } }, server: true, wait: false },
        },
      },
    },
  ]);
  const guestOwned = [`n${D}`, 'r0'],
    toolstackOwned = ['n0', `r${D}`];
  await ctx.xs.transaction(async (tx) => {
    const put = async (path, value, perms) => {
      await ctx.xs.write(path, value, tx);
      if (perms) await ctx.xs.setPerms(path, perms, tx);
    };
    await put(F, '', guestOwned);
    await put(`${F}/backend`, B, guestOwned);
    await put(`${F}/backend-id`, 0, guestOwned);
    await put(`${F}/state`, 1, guestOwned);
    await put(`${F}/protocol`, 'vt100', guestOwned);
    await put(`${F}/name`, name, toolstackOwned);
    await put(`${F}/limit`, 1048576, toolstackOwned);
    await put(`${F}/type`, 'ioemu', toolstackOwned);
    await put(`${F}/output`, `chardev:${chardev}`, toolstackOwned);
    await put(`${F}/tty`, '', toolstackOwned);
    await put(B, '', toolstackOwned);
    for (const [k, v] of [
      ['frontend', F],
      ['frontend-id', D],
      ['online', 1],
      ['state', 1],
      ['protocol', 'vt100'],
      ['name', name],
      ['connection', 'socket'],
      ['path', socket],
    ]) {
      await put(`${B}/${k}`, v);
    }
  });
  ctx.socketByName.set(name, socket);
  ctx.socketByDevid.set(devid, socket);
  // `state`: the frontend state to wait for (default 4, Connected; 1 for a devid the guest
  // kernel never probes, such as 10).
  const want = String(arg.state ?? 4);
  await waitState(ctx, `${F}/state`, want, step.timeout ?? 30);
  ctx.log(`  devid ${devid} (${name}) at state ${want}, socket ${socket}`);
}

/** Graceful unplug only: backend Closing, frontend Closed, then remove, then chardev-remove. */
async function unplug(arg, step, ctx) {
  const { devid } = arg;
  const F = fePath(ctx, devid),
    B = bePath(ctx, devid);
  const sock = ctx.socketByDevid.get(devid);
  if (sock) closeConnection(sock, ctx);
  const output = await ctx.xs.read(`${F}/output`, '');
  await ctx.xs.transaction(async (tx) => {
    await ctx.xs.write(`${B}/online`, 0, tx);
    await ctx.xs.write(`${B}/state`, 5, tx);
  });
  // Never remove the directories without this handshake: it corrupts QEMU (see README).
  await waitState(ctx, `${F}/state`, '6', step.timeout ?? 30);
  // QEMU's backend then closes its side (unbinds the event channel) and sets its own state
  // to 6; removing the directories before that left QEMU polling a dead event channel
  // ("xenevtchn_pending returned -1") and it died when the devid was plugged again (agent-soak).
  await waitState(ctx, `${B}/state`, '6', 10).catch((e) => ctx.log(`  backend did not reach Closed: ${e.message}`));
  await ctx.xs.transaction(async (tx) => {
    await ctx.xs.rm(F, tx);
    await ctx.xs.rm(B, tx);
  });
  if (output.startsWith('chardev:')) {
    await qmp(ctx.qmpPath, [{ execute: 'chardev-remove', arguments: { id: output.slice('chardev:'.length) } }]);
  }
  ctx.socketByDevid.delete(devid);
  ctx.log(`  devid ${devid} closed and removed (${output || 'no chardev'})`);
}

// ---------------------------------------------------------------- portable scenarios
// The steps a portable scenario may use besides plug and unplug; the simulator runs the same
// file (test/integration/portable-scenarios.test.ts). See README, "Portable scenarios".

const PLAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The agent as a user gets it: dpkg -i the project's .deb (it starts the service). */
async function startAgent(_arg, step, ctx) {
  const res = await runCommand('guest', 'dpkg -i /opt/e2e/xen-channels.deb', step.timeout ?? 120, ctx);
  if (res.code !== 0) throw new Error(`dpkg -i failed (exit ${res.code}): ${clip(res.stderr, 300)}`);
}

/** Polls the guest's channel outcome until it is exactly {links, channels}; else the last one seen. */
async function observe(arg, step, ctx) {
  const extra = Object.keys(arg).filter((k) => k !== 'links' && k !== 'channels');
  if (extra.length) throw new Error(`observe takes only links and channels, not ${extra.join(', ')}`);
  const want = JSON.stringify({ links: arg.links ?? [], channels: arg.channels ?? [] });
  const deadline = Date.now() + (step.timeout ?? 60) * 1000;
  let got;
  for (;;) {
    const res = await runCommand('guest', 'node /opt/e2e/channel-outcome.mjs', 60, ctx);
    got = res.code === 0 ? res.stdout.trim() : `(exit ${res.code}: ${clip(res.stderr.trim(), 300)})`;
    if (got === want) return;
    if (Date.now() + 1000 > deadline) break;
    await sleep(1000);
  }
  throw new Error(`outcome still differs after ${step.timeout ?? 60} s: expected ${want}, observed ${got}`);
}

/** A line written in the guest to /dev/vport/<name> reaches the dom0 socket of that channel. */
async function writeLink(arg, step, ctx) {
  if (!PLAIN_NAME.test(arg.name ?? '')) throw new Error(`write-link: not a plain channel name: ${arg.name}`);
  // `devid`: the channel expected behind the link when several were plugged with the name.
  const expected = arg.devid === undefined ? { channel: arg.name } : { socket: ctx.socketByDevid.get(arg.devid) ?? '' };
  if (expected.socket === '') throw new Error(`write-link: no channel plugged as devid ${arg.devid}`);
  // Connect first: QEMU drops what the guest writes while no client is connected.
  const c = await connection(socketOf(expected, ctx), ctx, step.timeout ?? 10);
  const line = `written to /dev/vport/${arg.name}`;
  const res = await runCommand('guest', `printf '%s\\n' '${line}' > /dev/vport/${arg.name}`, 30, ctx);
  if (res.code !== 0)
    throw new Error(`the guest could not write the link (exit ${res.code}): ${clip(res.stderr, 300)}`);
  const got = await c.expect((t) => {
    const i = t.indexOf(`${line}\n`);
    return i < 0 ? -1 : i + line.length + 1;
  }, step.timeout ?? 10);
  ctx.log(`  received ${JSON.stringify(clip(got, 500))}`);
}

// ---------------------------------------------------------------- the vocabulary

export const STEPS = {
  /** Shell line(s) in the guest over the control path. */
  guest: (arg, step, ctx) => command('guest', arg, step, ctx),
  /** Shell line(s) in dom0 (env: DOMID, GUEST, SCENARIO). */
  dom0: (arg, step, ctx) => command('dom0', arg, step, ctx),
  plug,
  unplug,
  'start-agent': startAgent,
  observe,
  'write-link': writeLink,
  /** Bytes into a channel socket: {socket|channel, data} or {socket|channel, hex}. */
  async send(arg, step, ctx) {
    const c = await connection(socketOf(arg, ctx), ctx, step.timeout ?? 10);
    await c.send(arg.hex !== undefined ? Buffer.from(arg.hex, 'hex') : Buffer.from(arg.data, 'latin1'));
  },
  /** Wait for received bytes on a channel socket: {socket|channel, match (regex) | contains}. */
  async expect(arg, step, ctx) {
    const c = await connection(socketOf(arg, ctx), ctx, step.timeout ?? 10);
    const test =
      arg.match !== undefined
        ? (t) => {
            const m = new RegExp(arg.match, 'm').exec(t);
            return m ? m.index + m[0].length : -1;
          }
        : (t) => {
            const i = t.indexOf(arg.contains);
            return i < 0 ? -1 : i + arg.contains.length;
          };
    const got = await c.expect(test, step.timeout ?? 10);
    ctx.log(`  received ${JSON.stringify(clip(got, 500))}`);
  },
  /** Close the harness's connection to a channel socket: {socket|channel}. */
  async close(arg, _step, ctx) {
    closeConnection(socketOf(arg, ctx), ctx);
  },
  async sleep(arg) {
    await sleep(Number(arg) * 1000);
  },
  /** Run the inner `steps` `times` times in order (soak tests): {times, steps}; stops at the first failure. */
  async repeat(arg, _step, ctx) {
    if (!Number.isInteger(arg.times) || arg.times < 1 || !Array.isArray(arg.steps))
      throw new Error(`repeat: expected {times: positive integer, steps: [...]}, got ${JSON.stringify(arg)}`);
    arg.steps.forEach(actionOf);
    for (let round = 1; round <= arg.times; round++) {
      const t0 = Date.now();
      for (const [k, inner] of arg.steps.entries()) {
        const action = actionOf(inner);
        try {
          await STEPS[action](inner[action], inner, ctx);
        } catch (e) {
          throw new Error(
            `round ${round} of ${arg.times}, inner step ${k + 1} (${inner.name ?? action}): ${e.message}`,
          );
        }
      }
      ctx.log(`  round ${round} of ${arg.times} ok (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
  },
  /** Poll a guest/dom0 command step until its expectations hold: {guest|dom0, exit, stdout, ...}. */
  async 'wait-for'(arg, step, ctx) {
    const where = 'guest' in arg ? 'guest' : 'dom0';
    const deadline = Date.now() + (step.timeout ?? 60) * 1000;
    let why;
    for (;;) {
      const left = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
      const res = await runCommand(where, arg[where], Math.min(arg.timeout ?? 30, left), ctx);
      why = checkResult(res, arg);
      if (!why) return;
      if (Date.now() + (step.interval ?? 1) * 1000 > deadline) break;
      await sleep((step.interval ?? 1) * 1000);
    }
    throw new Error(`still not met after ${step.timeout ?? 60} s: ${why}`);
  },
};

/** The action key of a step (exactly one key of STEPS), or throw. */
export function actionOf(step) {
  const keys = Object.keys(step).filter((k) => k in STEPS);
  if (keys.length !== 1)
    throw new Error(`step needs exactly one action of ${Object.keys(STEPS).join(', ')}: ${JSON.stringify(step)}`);
  return keys[0];
}
