import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { channelOutcome } from '../../conformance/channel-outcome.js';

t.test('channelOutcome', async (t) => {
  t.test('lists each name once when the link directories agree, and consoles by devid', async (t) => {
    const dev = t.testdir();
    for (const dir of ['vport', 'xen-channel', 'virtio-ports']) {
      await mkdir(join(dev, dir));
      await symlink('../hvc2', join(dev, dir, 'org.example.b'));
      await symlink('/dev/hvc1', join(dev, dir, 'org.example.a'));
    }
    const outcome = await channelOutcome(dev, {
      channels: [
        {
          key: '10',
          devid: 10,
          name: 'org.example.ten',
          state: 'Initialising',
          slot: undefined,
          problems: ['devid 10 cannot work: the guest kernel ...'],
        },
        { key: '2', devid: 2, name: 'org.example.b', state: 'Connected', slot: 2, problems: [] },
        {
          key: 'x',
          devid: undefined,
          name: undefined,
          state: 'no state node',
          slot: undefined,
          problems: ['"x" is not a devid: ...', 'second: b'],
        },
        { key: '1', devid: 1, name: 'org.example.a', state: 'Connected', slot: 1, problems: [] },
      ],
    });
    t.same(outcome, {
      links: ['org.example.a -> hvc1', 'org.example.b -> hvc2'],
      consoles: [
        '1 org.example.a Connected hvc1',
        '2 org.example.b Connected hvc2',
        '10 org.example.ten Initialising - ! devid 10 cannot work',
        'x - no state node - ! "x" is not a devid ! second',
      ],
    });
  });

  t.test('shows every directory when they disagree, and no directory at all as no links', async (t) => {
    const dev = t.testdir();
    t.same(await channelOutcome(dev, { channels: [] }), { links: [], consoles: [] });
    await mkdir(join(dev, 'vport'));
    await mkdir(join(dev, 'virtio-ports'));
    await symlink('../hvc1', join(dev, 'vport', 'org.example.a'));
    await symlink('../hvc3', join(dev, 'virtio-ports', 'org.example.a'));
    await symlink('../somewhere', join(dev, 'virtio-ports', 'org.example.c'));
    t.same((await channelOutcome(dev, { channels: [] })).links, [
      'org.example.a -> vport:hvc1 xen-channel:- virtio-ports:hvc3',
      'org.example.c -> vport:- xen-channel:- virtio-ports:../somewhere',
    ]);
  });
});
