import { spawnSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { systemClock } from '../../../agent/clock.js';
import {
  agentRunning,
  announceAgent,
  removeStaleTemporaries,
  withLock,
  writeFileAtomic,
} from '../../../agent/effects/files.js';
import { shortDir } from '../../helpers/short-dir.js';

t.test('announceAgent / agentRunning', async (t) => {
  const key = shortDir(t);
  t.equal(await agentRunning(key), false, 'nobody announced yet');
  const withdraw = await announceAgent(key);
  t.equal(await agentRunning(key), true);
  t.equal(await agentRunning(`${key}-other`), false, 'per run root');
  await writeFileAtomic(join(key, 'xen-channels', 'agent.pid'), '999999999 12345\n');
  t.equal(await agentRunning(key), false, 'a pid file of a process that is gone does not count');
  const again = await announceAgent(key);
  t.equal(await agentRunning(key), true);
  await again();
  await withdraw();
  t.equal(await agentRunning(key), false, 'gone once withdrawn');
});

t.test('withLock serialises and leaves no listener behind on retries', async (t) => {
  const key = shortDir(t);
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  t.teardown(() => {
    process.off('warning', onWarning);
  });
  const order: string[] = [];
  let release: () => void = () => {};
  const first = withLock(key, systemClock, async () => {
    order.push('first in');
    await new Promise<void>((resolve) => {
      release = resolve;
    });
    order.push('first out');
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  const others = Array.from({ length: 12 }, (_, i) => withLock(key, systemClock, async () => order.push(`other ${i}`)));
  await new Promise((resolve) => setTimeout(resolve, 700)); // many retries while held
  release();
  await Promise.all([first, ...others]);
  t.same(order.slice(0, 2), ['first in', 'first out'], 'nobody entered while it was held');
  t.equal(order.length, 14);
  t.same(warnings, [], 'no MaxListenersExceededWarning');
  await t.rejects(
    withLock(key, { now: () => 0, epochMs: () => 0, sleep: () => Promise.resolve() }, async () => {
      await withLock(
        key,
        {
          now: (() => {
            let n = 0;
            return () => (n += 100_000);
          })(),
          epochMs: () => 0,
          sleep: () => Promise.resolve(),
        },
        async () => {},
      );
    }),
    { name: 'LockTimeoutError', message: /timed out waiting for the xen-channels lock/ },
  );
});

t.test('writeFileAtomic replaces the whole file', async (t) => {
  const dir = shortDir(t);
  const path = join(dir, 'sub', 'f');
  await writeFileAtomic(path, 'one');
  await writeFileAtomic(path, 'two');
  t.equal(await readFile(path, 'utf8'), 'two');
});

t.test('removeStaleTemporaries removes what dead writers left, and nothing of a live one (issue 9)', async (t) => {
  const dir = shortDir(t);
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  await writeFile(join(dir, `state.json.tmp-${dead}`), '{"half');
  await writeFile(join(dir, `state.json.tmp-${process.pid}`), 'in flight');
  await writeFile(join(dir, 'state.json'), '{}');
  t.same(await removeStaleTemporaries(dir), [join(dir, `state.json.tmp-${dead}`)]);
  t.same((await readdir(dir)).sort(), ['state.json', `state.json.tmp-${process.pid}`]);
  t.same(await removeStaleTemporaries(join(dir, 'missing')), [], 'a missing directory is fine');
});
