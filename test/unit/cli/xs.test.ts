import { PassThrough } from 'node:stream';
import t from 'tap';
import { main } from '../../../agent/cli/main.js';
import { runXs } from '../../../agent/cli/xs.js';
import { XenstoredSim } from '../../../agent/sim/xenstored/server.js';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString() };
}

function guestWithChannels(): XenstoredSim {
  const sim = new XenstoredSim();
  sim.write('/local/domain/3', '', [
    { domid: 0, access: 'none' },
    { domid: 3, access: 'read' },
  ]);
  sim.write('/local/domain/3/device/console/1/name', 'org.qemu.guest_agent.0', [
    { domid: 0, access: 'none' },
    { domid: 3, access: 'read' },
  ]);
  sim.write('/local/domain/3/device/console/1/state', '4', [{ domid: 3, access: 'none' }]);
  return sim;
}

t.test('xen-channel xs', async (t) => {
  const sim = guestWithChannels();
  t.teardown(() => sim.close());
  const transport = () => sim.transport({ domid: 3 });

  t.test('ls prints the subtree of device/console by default', async (t) => {
    const out = capture();
    t.equal(await runXs(['ls'], transport, out.stream), 0);
    t.equal(
      out.text(),
      [
        'device/console = ""',
        'device/console/1 = ""',
        'device/console/1/name = "org.qemu.guest_agent.0"',
        'device/console/1/state = "4"',
        '',
      ].join('\n'),
    );
  });

  t.test('ls --json gives the tree as data', async (t) => {
    const out = capture();
    await runXs(['ls', 'device/console/1', '--json'], transport, out.stream);
    t.match(JSON.parse(out.text()), {
      path: 'device/console/1',
      children: [
        { path: 'device/console/1/name', value: 'org.qemu.guest_agent.0' },
        { path: 'device/console/1/state', value: '4' },
      ],
    });
  });

  t.test('read prints one value; a missing node is ENOENT', async (t) => {
    const out = capture();
    await runXs(['read', 'device/console/1/name'], transport, out.stream);
    t.equal(out.text(), 'org.qemu.guest_agent.0\n');
    await t.rejects(runXs(['read', 'device/console/9/name'], transport, out.stream), { code: 'ENOENT' });
  });

  t.test('watch prints the registration event and then changes', async (t) => {
    const out = capture();
    const done = runXs(['watch', 'device/console', '--count', '2'], transport, out.stream);
    await new Promise((resolve) => out.stream.once('data', resolve));
    sim.write('/local/domain/3/device/console/1/state', '5');
    t.equal(await done, 0);
    t.equal(out.text(), 'device/console\ndevice/console/1/state\n');
  });

  t.test('usage errors exit 2 with a message', async (t) => {
    for (const argv of [['xs'], ['xs', 'frob'], ['xs', 'read'], ['xs', 'watch', 'x', '--count', '0'], ['nope']]) {
      const out = capture();
      const err = capture();
      t.equal(await main(argv, { stdin: process.stdin, stdout: out.stream, stderr: err.stream }), 2, argv.join(' '));
      t.match(err.text(), /^xen-channel: /);
    }
  });

  t.test('--version and --help', async (t) => {
    const out = capture();
    t.equal(await main(['--version'], { stdin: process.stdin, stdout: out.stream, stderr: capture().stream }), 0);
    t.match(out.text(), /^\d+\.\d+\.\d+\n$/);
    const help = capture();
    t.equal(await main(['--help'], { stdin: process.stdin, stdout: help.stream, stderr: capture().stream }), 0);
    t.match(
      help.text(),
      /Exit status: 0 ok, 1 failed, 2 usage error, 3 no xenstore .*\n4 no such channel .*, 5 timed out/,
    );
  });
});
