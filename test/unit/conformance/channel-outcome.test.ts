import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { renderPublished } from '../../../agent/api/published.js';
import { channelOutcome } from '../../conformance/channel-outcome.js';

t.test('channelOutcome', async (t) => {
  t.test('lists each name once when the link directories agree, and the published channels by devid', async (t) => {
    const dev = t.testdir();
    const run = join(dev, 'run');
    for (const dir of ['vport', 'xen-channel', 'virtio-ports']) {
      await mkdir(join(dev, dir));
      await symlink('../hvc2', join(dev, dir, 'org.example.b'));
      await symlink('/dev/hvc1', join(dev, dir, 'org.example.a'));
    }
    await mkdir(join(run, 'xen-channels'), { recursive: true });
    const problem = 'devid 10 cannot work: the guest kernel ...';
    await writeFile(
      join(run, 'xen-channels', 'channels.json'),
      renderPublished([
        {
          name: 'org.example.ten',
          devid: 10,
          tty: undefined,
          state: 'Initialising',
          links: [],
          problems: [problem, 'b: c'],
        },
        { name: 'org.example.b', devid: 2, tty: '/root/x/dev/hvc2', state: 'Connected', links: ['x'], problems: [] },
        { name: 'org.example.a', devid: 1, tty: '/dev/hvc1', state: 'Connected', links: ['x'], problems: [] },
      ]),
    );
    t.same(await channelOutcome({ dev, run }), {
      links: ['org.example.a -> hvc1', 'org.example.b -> hvc2'],
      channels: [
        '1 org.example.a Connected hvc1',
        '2 org.example.b Connected hvc2',
        '10 org.example.ten Initialising - ! devid 10 cannot work ! b',
      ],
    });
  });

  t.test('shows every directory when they disagree; no directories and no list are empty', async (t) => {
    const dev = t.testdir();
    const run = join(dev, 'run');
    t.same(await channelOutcome({ dev, run }), { links: [], channels: [] });
    await mkdir(join(dev, 'vport'));
    await mkdir(join(dev, 'virtio-ports'));
    await symlink('../hvc1', join(dev, 'vport', 'org.example.a'));
    await symlink('../hvc3', join(dev, 'virtio-ports', 'org.example.a'));
    await symlink('../somewhere', join(dev, 'virtio-ports', 'org.example.c'));
    t.same((await channelOutcome({ dev, run })).links, [
      'org.example.a -> vport:hvc1 xen-channel:- virtio-ports:hvc3',
      'org.example.c -> vport:- xen-channel:- virtio-ports:../somewhere',
    ]);
  });
});
