import t from 'tap';
import { inventory } from '../../../agent/model/consoles.js';

const raw = (key: string, state?: string, name?: string) => ({
  key,
  state,
  name: name === undefined ? undefined : Buffer.from(name),
});

t.test('inventory', async (t) => {
  const table: Array<[string, ReturnType<typeof raw>, Record<string, unknown>]> = [
    [
      'a connected channel',
      raw('1', '4', 'org.qemu.guest_agent.0'),
      { devid: 1, phase: 'live', stateName: 'Connected', unusable: undefined },
    ],
    ['initialised counts as live (hvc_alloc ran)', raw('2', '3', 'a'), { phase: 'live', stateName: 'Initialised' }],
    ['not probed yet', raw('3', '1', 'a'), { phase: 'waiting', stateName: 'Initialising' }],
    ['closing', raw('4', '5', 'a'), { phase: 'closed', stateName: 'Closing' }],
    ['closed', raw('5', '6', 'a'), { phase: 'closed' }],
    ['no state node', raw('6', undefined, 'a'), { phase: 'waiting', stateName: 'no state node', state: undefined }],
    ['garbage state', raw('7', 'x', 'a'), { phase: 'waiting', stateName: 'invalid state' }],
    ['unnamed console', raw('8', '4'), { name: undefined, phase: 'live' }],
    [
      'devid 10 never probes',
      raw('10', '1', 'a'),
      { devid: 10, phase: 'waiting', unusable: /refuses 0 .*xencons_probe.*devid from 1 to 9/ },
    ],
    [
      'devid 13 collides with 3',
      raw('13', '4', 'a'),
      { devid: 13, phase: 'waiting', unusable: /acts as console 3 and collides with devid 3/ },
    ],
    ['devid 0', raw('0', '4', 'a'), { unusable: /devid 0 cannot work/ }],
    ['non-numeric devid', raw('abc', '4', 'a'), { devid: undefined, unusable: /"abc" is not a devid/ }],
    ['leading zero', raw('01', '4', 'a'), { unusable: /"01" is not a devid/ }],
    ['huge devid', raw('99999999999999999999', '4', 'a'), { devid: undefined, unusable: /is not a devid/ }],
  ];
  for (const [what, input, expected] of table) {
    const [entry] = inventory([input]);
    t.match(entry, expected, what);
  }
  const bad = inventory([raw('1', '4', 'bad/name')])[0];
  t.match(bad?.name, { ok: false, reason: /contains "\/"/ }, 'a bad name is carried as a verdict, not dropped');
  t.same(
    inventory([raw('3'), raw('1'), raw('2')]).map((e) => e.key),
    ['3', '1', '2'],
    'directory order is kept',
  );
});
