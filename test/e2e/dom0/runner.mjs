// Scenario runner (dom0, Debian's node 18): for each scenario named in /etc/e2e/run.json,
// boot a fresh Debian guest with the scenario's channels (xl create), wait for its
// control server, run the steps, collect artefacts on failure, destroy the guest.
// Talks to the host only through its stdout (the serial console), in marker lines:
//   E2E-PROGRESS <text>          E2E-TIMING <scenario> <what> <seconds>
//   E2E-RESULT PASS <scenario> <seconds>   E2E-RESULT FAIL <scenario> <seconds> <reason>
//   E2E-ART-BEGIN <scenario> <file> / E2E|<line>... / E2E-ART-END
//   E2E-DONE <passed> <failed>
// One scenario's failure never stops the next one.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { GuestControl } from './lib/guest-ctl.mjs';
import { actionOf, runDom0, STEPS } from './lib/steps.mjs';
import { Xenstore } from './lib/xenstore.mjs';

const CONF = JSON.parse(fs.readFileSync('/etc/e2e/run.json', 'utf8'));
const SCENARIO_DIR = '/etc/e2e/scenarios';
const CONSOLE_LOG_DIR = '/var/log/xen/console';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const secs = (t0) => ((Date.now() - t0) / 1000).toFixed(1);
const out = (line) => process.stdout.write(`${line}\n`);
const progress = (msg) => out(`E2E-PROGRESS ${msg}`);
const oneLine = (s) => String(s).replace(/\s+/g, ' ').trim();

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/; // no commas/quotes: xl's channel syntax
const SOCKET_RE = /^\/[A-Za-z0-9._/-]+$/;

function loadScenario(name) {
  const sc = JSON.parse(fs.readFileSync(`${SCENARIO_DIR}/${name}.json`, 'utf8'));
  const channels = sc.channels ?? [];
  for (const c of channels) {
    if (!NAME_RE.test(c.name ?? ''))
      throw new Error(`channel name ${JSON.stringify(c.name)} is not usable in an xl config`);
    if (!SOCKET_RE.test(c.socket ?? ''))
      throw new Error(`channel socket ${JSON.stringify(c.socket)} must be an absolute plain path`);
  }
  if (!Array.isArray(sc.steps)) throw new Error('scenario has no "steps" list');
  sc.steps.forEach(actionOf);
  return { ...sc, channels };
}

function xlConfig(ctx) {
  const g = CONF.guest;
  // Debian's xl 4.17.7 drops the FIRST channel (it gets devid 0, "Primary console has
  // invalid configuration"); a throw-away pty channel takes that place, so the
  // scenario's channels get devids 1, 2, ... in order.
  const channels = [
    'connection=pty, name=e2e.dropped-by-xl',
    ...ctx.sc.channels.map((c) => `connection=socket, name=${c.name}, path=${c.socket}`),
  ];
  const lines = [
    `name = "${ctx.gname}"`,
    'type = "pv"',
    `kernel = "${g.kernel}"`,
    `ramdisk = "${g.ramdisk}"`,
    `cmdline = "${g.cmdline}"`,
    `memory = ${ctx.sc.memory ?? g.memory}`,
    `vcpus = ${g.vcpus}`,
    'on_crash = "preserve"',
    `channel = [ ${channels.map((c) => `"${c}"`).join(',\n            ')} ]`,
    ...(ctx.sc.xl_extra ?? []),
  ];
  return `${lines.join('\n')}\n`;
}

function artifact(ctx, file, text) {
  out(`E2E-ART-BEGIN ${ctx.name} ${file}`);
  for (const line of String(text).split('\n')) out(`E2E|${line}`);
  out('E2E-ART-END');
}

async function domainState(gname) {
  const r = await runDom0(`xl list ${gname} | tail -n +2`, 20, process.env);
  if (r.code !== 0) return 'gone';
  return r.stdout.trim().split(/\s+/)[4] ?? '?';
}

async function boot(ctx) {
  fs.mkdirSync(ctx.dir, { recursive: true });
  fs.writeFileSync(`${ctx.dir}/guest.cfg`, xlConfig(ctx));
  const t0 = Date.now();
  const r = await runDom0(`xl -v create ${ctx.dir}/guest.cfg`, 300, process.env);
  ctx.xlCreateLog = r.stdout + r.stderr;
  if (r.code !== 0) throw new Error(`xl create failed (exit ${r.code}): ${oneLine(r.stderr).slice(-300)}`);
  ctx.domid = Number(execFileSync('xl', ['domid', ctx.gname]).toString().trim());
  ctx.qmpPath = `/var/run/xen/qmp-libxl-${ctx.domid}`;
  ctx.dom0Env = { ...process.env, DOMID: String(ctx.domid), GUEST: ctx.gname, SCENARIO: ctx.name };
  out(`E2E-TIMING ${ctx.name} xl-create ${secs(t0)}`);
  let tty = '';
  for (let i = 0; i < 150 && !tty; i++) {
    tty = await ctx.xs.read(`/local/domain/${ctx.domid}/console/tty`, '');
    if (!tty) await sleep(200);
  }
  if (!tty) throw new Error('xenconsoled published no console tty for the guest');
  ctx.guest = new GuestControl(tty);
  const isDead = async () => {
    const st = await domainState(ctx.gname);
    return st === 'gone' || st.includes('c') || st.includes('s');
  };
  if (!(await ctx.guest.waitReady(CONF.bootTimeout, isDead))) {
    const st = await domainState(ctx.gname);
    throw new Error(`guest control server not reachable within ${secs(t0)} s (domain state ${st})`);
  }
  ctx.ready = true;
  out(`E2E-TIMING ${ctx.name} guest-ready ${secs(t0)}`);
  progress(`${ctx.name}: guest domid ${ctx.domid} ready ${secs(t0)} s after xl create`);
}

// xenstoredDeath: why dom0's xenstored is gone (init.sh records its exit), or null
function xenstoredDeath() {
  try {
    const rc = fs.readFileSync('/run/e2e/xenstored.exit', 'utf8').trim();
    return `dom0's xenstored exited with status ${rc} (see xenstored.txt of the scenario it failed in)`;
  } catch {
    return null;
  }
}

// xenstoredReport: the state of dom0's xenstored, for a failed scenario's artefacts
async function xenstoredReport() {
  const r = await runDom0(
    'echo "exit: $(cat /run/e2e/xenstored.exit 2>/dev/null || echo running)"; ' +
      'p=$(cat /run/xenstored.pid 2>/dev/null); echo "pid: $p"; ' +
      '[ -n "$p" ] && grep -E "^(State|VmRSS|Threads)" /proc/$p/status; ' +
      '[ -n "$p" ] && echo "wchan: $(cat /proc/$p/wchan 2>/dev/null)" && cat /proc/$p/stack 2>/dev/null; ' +
      '[ -n "$p" ] && echo "fds: $(ls /proc/$p/fd 2>/dev/null | wc -l)"; ' +
      'echo "----- xenstored.log"; tail -n 50 /run/e2e/xenstored.log; ' +
      'echo "----- trace (last 200 lines)"; tail -n 200 /run/e2e/xenstored.trace 2>/dev/null || echo "(no trace: add e2e.xstrace to DOM0_EXTRA)"; ' +
      'echo "----- trace without rate-limit lines (last 4000)"; grep -v "^wrl:" /run/e2e/xenstored.trace 2>/dev/null | tail -n 4000',
    30,
    process.env,
  );
  return r.stdout + r.stderr;
}

async function collectArtifacts(ctx) {
  artifact(ctx, 'xenstored.txt', await xenstoredReport());
  artifact(ctx, 'steps.log', ctx.lines.join('\n'));
  if (ctx.xlCreateLog) artifact(ctx, 'xl-create.log', ctx.xlCreateLog);
  if (ctx.domid !== undefined && !xenstoredDeath()) {
    const D = ctx.domid;
    const xs = await runDom0(
      `xenstore-ls -fp /local/domain/${D}; xenstore-ls -fp /local/domain/0/backend/console/${D}; ` +
        `xenstore-ls -fp /libxl/${D}`,
      30,
      process.env,
    );
    artifact(ctx, 'xenstore.txt', xs.stdout + xs.stderr);
  }
  const conslog = `${CONSOLE_LOG_DIR}/guest-${ctx.gname}.log`;
  if (fs.existsSync(conslog)) artifact(ctx, 'guest-console.log', fs.readFileSync(conslog, 'latin1'));
  if (ctx.ready) {
    try {
      const j = await ctx.guest.run('journalctl -b --no-pager -o short-monotonic', 90);
      artifact(ctx, 'guest-journal.log', j.stdout + j.stderr);
    } catch (e) {
      artifact(ctx, 'guest-journal.log', `unreachable: ${e.message}`);
    }
  }
  const qemuLog = `/var/log/xen/qemu-dm-${ctx.gname}.log`;
  if (fs.existsSync(qemuLog)) artifact(ctx, 'qemu-dm.log', fs.readFileSync(qemuLog, 'latin1'));
  const dm = await runDom0('dmesg; echo "----- xl dmesg"; xl dmesg', 30, process.env);
  artifact(ctx, 'dom0-dmesg.txt', dm.stdout + dm.stderr);
}

async function teardown(ctx) {
  for (const c of ctx.conns.values()) c.close();
  ctx.guest?.close();
  if (xenstoredDeath()) return; // every xl command would hang
  if (ctx.domid !== undefined || (await domainState(ctx.gname)) !== 'gone') {
    const r = await runDom0(`xl destroy ${ctx.gname}`, 120, process.env);
    if (r.code !== 0) out(`E2E-PROGRESS ${ctx.name}: xl destroy failed: ${oneLine(r.stderr)}`);
  }
  for (const s of ctx.socketByName.values()) fs.rmSync(s, { force: true });
}

async function runScenario(name, xs) {
  const ctx = {
    name,
    xs,
    gname: `e2e-${name}`.slice(0, 60),
    dir: `/run/e2e/${name}`,
    lines: [],
    conns: new Map(),
    socketByName: new Map(),
    socketByDevid: new Map(),
    log(line) {
      this.lines.push(line);
    },
  };
  let error = null;
  try {
    ctx.sc = loadScenario(name);
    const death = xenstoredDeath();
    if (death) throw new Error(`not run: ${death}`);
    ctx.sc.channels.forEach((c, i) => {
      ctx.socketByName.set(c.name, c.socket);
      ctx.socketByDevid.set(i + 1, c.socket);
    });
    await boot(ctx);
    for (const [i, step] of ctx.sc.steps.entries()) {
      const action = actionOf(step);
      const label = step.name ?? `${action} ${oneLine(JSON.stringify(step[action])).slice(0, 100)}`;
      const t0 = Date.now();
      ctx.log(`step ${i + 1}: ${label}`);
      try {
        await STEPS[action](step[action], step, ctx);
      } catch (e) {
        ctx.log(`  FAILED after ${secs(t0)} s: ${e.message}`);
        throw new Error(`step ${i + 1} (${label}): ${e.message}`);
      }
      ctx.log(`  ok (${secs(t0)} s)`);
    }
  } catch (e) {
    error = e;
  }
  if (error || CONF.keepArtifacts) {
    if (error) ctx.log(`FAILED: ${error.message}`);
    await collectArtifacts(ctx).catch((e) => progress(`${name}: collecting artefacts failed: ${e.message}`));
  }
  await teardown(ctx).catch((e) => progress(`${name}: teardown failed: ${e.message}`));
  if (error) throw error;
}

async function main() {
  const xs = await Xenstore.connect();
  let passed = 0,
    failed = 0;
  for (const name of CONF.scenarios) {
    const t0 = Date.now();
    progress(`${name}: starting`);
    try {
      await runScenario(name, xs);
      passed++;
      out(`E2E-RESULT PASS ${name} ${secs(t0)}`);
    } catch (e) {
      failed++;
      out(`E2E-RESULT FAIL ${name} ${secs(t0)} ${oneLine(e.message).slice(0, 600)}`);
    }
  }
  xs.close();
  out(`E2E-DONE ${passed} ${failed}`);
}

// stdout is the console (a tty: written synchronously), so exiting at once loses nothing
// and no stray handle can keep dom0 from powering off.
main().then(
  () => process.exit(0),
  (e) => {
    out(`E2E-FATAL runner: ${oneLine(e.stack ?? e)}`);
    process.exit(1);
  },
);
