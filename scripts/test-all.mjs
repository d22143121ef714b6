#!/usr/bin/env node
/*
 * The whole test suite, as CI runs it (`npm test`): typecheck, lint, the tap suites with
 * coverage (agent/xenstore must stay at or above 90% of lines), the build, the packages with
 * their install tests, and the real-Xen end-to-end harness (`--no-e2e` leaves it out for a
 * quick local loop; CI never does).
 * Prints each step's outcome and ends with one line "N passed, N failed" counting every tap
 * test file assertion, every e2e scenario and every check step.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const bin = (name) => join(root, 'node_modules', '.bin', name);
const withE2e = !process.argv.includes('--no-e2e');
const COVERAGE_FLOOR = { dir: 'agent/xenstore', linesPct: 90 };

let passed = 0;
let failed = 0;
const failures = [];

function step(name, fn) {
  const t0 = Date.now();
  process.stdout.write(`\n=== ${name}\n`);
  let ok = false;
  try {
    ok = fn();
  } catch (err) {
    console.log(String(err?.stack ?? err));
  }
  console.log(`=== ${name}: ${ok ? 'ok' : 'FAILED'} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (!ok) failures.push(name);
  return ok;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, {
    cwd: root,
    stdio: opts.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit',
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (opts.capture) process.stdout.write(r.stdout ?? '');
  return r;
}

function check(name, cmd, args) {
  const ok = step(name, () => run(cmd, args).status === 0);
  if (ok) passed++;
  else failed++;
}

function filesBelow(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesBelow(p) : [p];
  });
}

check('typecheck', bin('tsc'), ['-p', 'tsconfig.json']);
check('lint', bin('biome'), ['check', '.']);

step('unit and integration tests (tap)', () => {
  const report = join(root, '.tap', 'report.tap');
  mkdirSync(dirname(report), { recursive: true }); // a fresh clone has no .tap/ yet
  const r = run(bin('tap'), ['--reporter=tap', `--reporter-file=${report}`], { capture: true });
  const tapText = existsSync(report) ? readFileSync(report, 'utf8') : '';
  // Show the failing tests with their diagnostics: everything from "not ok" to the next "ok".
  const lines = tapText.split('\n');
  lines.forEach((line, i) => {
    if (/^\s*not ok /.test(line)) console.log(lines.slice(Math.max(0, i - 25), i + 1).join('\n'));
  });
  const summary = /# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/.exec(tapText);
  if (!summary) {
    failed++;
    console.log('no tap summary found');
    return false;
  }
  passed += Number(summary[2]);
  failed += Number(summary[3] ?? 0);
  console.log(`tap: ${summary[2]} passed, ${summary[3] ?? 0} failed`);
  return r.status === 0 && Number(summary[3] ?? 0) === 0;
});

const coverageOk = step('coverage floor', () => {
  const summaryFile = join(root, '.tap/report/coverage-summary.json');
  const summary = JSON.parse(readFileSync(summaryFile, 'utf8'));
  // Re-export indexes and type-only modules have no lines to run.
  const typeOnly = (f) => !/^export (?!interface|type)/m.test(readFileSync(f, 'utf8'));
  const files = filesBelow(join(root, COVERAGE_FLOOR.dir)).filter(
    (f) => f.endsWith('.ts') && !f.endsWith('/index.ts') && !typeOnly(f),
  );
  let covered = 0;
  let total = 0;
  for (const file of files) {
    const lines = summary[file]?.lines;
    if (!lines) {
      console.log(`not loaded by any test: ${relative(root, file)}`);
      total += 1;
      continue;
    }
    covered += lines.covered;
    total += lines.total;
  }
  const pct = total ? (100 * covered) / total : 100;
  console.log(`${COVERAGE_FLOOR.dir} line coverage: ${pct.toFixed(2)}% (floor ${COVERAGE_FLOOR.linesPct}%)`);
  return pct >= COVERAGE_FLOOR.linesPct;
});
if (coverageOk) passed++;
else failed++;

check('build', bin('tsc'), ['-p', 'tsconfig.build.json']);

/** A suite script that prints its own "N passed, N failed" line; its counts join ours. */
function suite(name, script) {
  step(name, () => {
    const r = run('bash', [join(root, script)], { capture: true });
    const m = [...(r.stdout ?? '').matchAll(/^(\d+) passed, (\d+) failed/gm)].pop();
    if (!m) {
      failed++;
      console.log(`${script} printed no summary line`);
      return false;
    }
    passed += Number(m[1]);
    failed += Number(m[2]);
    return r.status === 0 && Number(m[2]) === 0;
  });
}

suite('packages and install tests (.deb, .rpm, standalone)', 'test/packaging/run.sh');
if (withE2e) suite('real-Xen end-to-end scenarios', 'test/e2e/run.sh');

console.log(
  `\n${failures.length ? `failed steps: ${failures.join(', ')}` : 'all steps passed'}${withE2e ? '' : ' (end-to-end skipped: --no-e2e)'}`,
);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failures.length === 0 ? 0 : 1);
