import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { verifyLinks } from '../../../agent/effects/links.js';

t.test('verifyLinks reports a link that misses its tty, not a tty that is gone (issue 9 soak)', async (t) => {
  const dev = t.testdir();
  await mkdir(join(dev, 'vport'));
  await writeFile(join(dev, 'hvc1'), '');
  await writeFile(join(dev, 'hvc2'), '');
  await symlink('../hvc1', join(dev, 'vport', 'right'));
  await symlink('../hvc2', join(dev, 'vport', 'wrong'));
  const problems = await verifyLinks(
    dev,
    new Map([
      ['vport/right', '../hvc1'],
      ['vport/wrong', '../hvc1'],
      ['vport/missing', '../hvc2'],
      ['vport/unplugged', '../hvc3'], // its tty went away during the pass: the next pass drops it
    ]),
  );
  t.same([...problems.keys()], ['vport/wrong', 'vport/missing']);
  t.match(problems.get('vport/missing'), /^\/dev\/vport\/missing resolves to \(ENOENT\), not to .*\/hvc2$/);
});
