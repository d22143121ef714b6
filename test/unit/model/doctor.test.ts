import t from 'tap';
import { type DoctorFacts, diagnose } from '../../../agent/model/doctor.js';

const healthy: DoctorFacts = {
  hypervisor: 'xen',
  xenbusDevice: true,
  kernelRelease: '6.1.0-27-amd64',
  kernelLog: ['[    1.2] xenconsole console-1: hvc1'],
  udevRunning: true,
  agentPublished: true,
  channels: [{ label: 'org.qemu.guest_agent.0', problems: [], linked: true }],
};

t.test('diagnose', async (t) => {
  const problems = (facts: Partial<DoctorFacts>) =>
    diagnose({ ...healthy, ...facts })
      .filter((f) => !f.ok)
      .map((f) => f.text);
  const table: Array<[string, Partial<DoctorFacts>, RegExp[]]> = [
    ['a healthy guest', {}, []],
    ['not Xen', { hypervisor: 'kvm' }, [/not a Xen guest \(hypervisor: kvm\)/]],
    ['no xenbus device', { xenbusDevice: false }, [/no \/dev\/xen\/xenbus: load the xen kernel modules/]],
    [
      'a kernel that cannot probe secondary consoles',
      {
        kernelRelease: '5.16.0',
        kernelLog: [
          'xenconsole: probe of console-1 failed with error -2',
          'xenconsole: probe of console-2 failed with error -2',
        ],
      },
      [/kernel \(5\.16\.0\) failed to probe console 1, 2 .*update the guest kernel/],
    ],
    ['agent never ran', { agentPublished: false }, [/agent has not run: systemctl enable --now xen-channels/]],
    [
      'a channel problem',
      { channels: [{ label: 'devid 10', problems: ['devid 10 cannot work'], linked: false }] },
      [/channel devid 10: devid 10 cannot work/],
    ],
  ];
  for (const [what, facts, expected] of table) {
    const found = problems(facts);
    t.equal(found.length, expected.length, `${what}: ${found.join(' | ')}`);
    for (const [i, re] of expected.entries()) t.match(found[i], re, what);
  }
  t.match(
    diagnose({ ...healthy, udevRunning: false }).find((f) => f.text.startsWith('udev')),
    { ok: true, text: /udev is not running: xen-channels makes the links itself/ },
  );
  const unreadableLog = diagnose({ ...healthy, kernelLog: undefined }).find((f) => f.text.startsWith('kernel'));
  t.match(unreadableLog, { ok: true, text: /kernel log not readable: run as root/ });
});
