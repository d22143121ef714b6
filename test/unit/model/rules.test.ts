import { readFileSync } from 'node:fs';
import t from 'tap';
import { type ChannelName, validateName } from '../../../agent/model/names.js';
import { checkLinkDirs, DEFAULT_LINK_DIRS, linkPaths, renderRules } from '../../../agent/model/rules.js';
import { hostileNames } from '../../fixtures/names.js';

const golden = (name: string): string => readFileSync(new URL(`../../fixtures/rules/${name}`, import.meta.url), 'utf8');
const name = (s: string): ChannelName => {
  const v = validateName(Buffer.from(s));
  if (!v.ok) throw new Error(v.reason);
  return v.name;
};

t.test('renderRules matches the golden files', async (t) => {
  t.equal(
    renderRules(
      [
        { name: name('org.example.ctl'), devid: 2, slot: 2 },
        { name: name('org.qemu.guest_agent.0'), devid: 1, slot: 1 },
        { name: name('s-4-VM.vport'), devid: 4, slot: 3 },
      ],
      DEFAULT_LINK_DIRS,
    ),
    golden('three-channels.rules'),
  );
  t.equal(renderRules([], DEFAULT_LINK_DIRS), golden('empty.rules'));
  t.equal(renderRules([{ name: name('only.vport'), devid: 1, slot: 0 }], ['vport']), golden('vport-only.rules'));
});

t.test('renderRules refuses out-of-range numbers and bad link directories', async (t) => {
  t.throws(() => renderRules([{ name: name('a'), devid: 1, slot: 8 }], DEFAULT_LINK_DIRS), RangeError);
  t.throws(() => renderRules([{ name: name('a'), devid: 10, slot: 1 }], DEFAULT_LINK_DIRS), RangeError);
  for (const dirs of [[], ['../etc'], ['a"b'], ['Vport'], ['vport', 'vport'], ['']]) {
    t.throws(() => checkLinkDirs(dirs), RangeError, JSON.stringify(dirs));
  }
  t.same(linkPaths(name('x.y'), DEFAULT_LINK_DIRS), ['vport/x.y', 'xen-channel/x.y', 'virtio-ports/x.y']);
});

t.test('no hostile name can reach a rules file: validation comes first', async (t) => {
  for (const [what, raw] of hostileNames) {
    const verdict = validateName(raw);
    t.equal(verdict.ok, false, `${what} never becomes a ChannelName`);
  }
  // Every accepted name renders to one line per rule with only the expected operators.
  const rendered = renderRules([{ name: name('org.qemu.guest_agent.0'), devid: 1, slot: 1 }], DEFAULT_LINK_DIRS);
  const ruleLines = rendered.split('\n').filter((l) => l && !l.startsWith('#'));
  t.equal(ruleLines.length, 1);
  t.same(
    ruleLines[0]?.split(', ').map((p) => p.replace(/=.*/, '')),
    [
      'SUBSYSTEM',
      'KERNEL',
      'ENV{XEN_CHANNEL_NAME}',
      'ENV{XEN_CHANNEL_DEVID}',
      'SYMLINK+',
      'SYMLINK+',
      'SYMLINK+',
      'TAG+',
    ],
  );
});
