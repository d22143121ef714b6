import { PassThrough } from 'node:stream';
import t from 'tap';
import { runDemo } from '../../agent/cli/demo.js';

t.test('xen-channel demo succeeds on the simulated guest and tells each step', async (t) => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => {
    text += c.toString();
  });
  t.equal(await runDemo([], out), 0, 'exit status 0');
  const steps = [
    /^1\. A simulated Xen guest in /m,
    /^2\. The agent read the names from xenstore and linked each tty:$/m,
    /^ {3}1\s+org\.qemu\.guest_agent\.0\s+Connected\s+hvc1\s+\/dev\/vport\/org\.qemu\.guest_agent\.0 \+2$/m,
    /^3\. An application wrote "hello from the guest" to \/dev\/vport\/org\.example\.app; the dom0 socket of devid 2 got it\.$/m,
    /^4\. dom0 hot-plugged devid 3 org\.example\.hotplug; the agent linked \/dev\/vport\/org\.example\.hotplug -> hvc3\.$/m,
    /^5\. dom0 unplugged devid 1 .*Final state:$/m,
    /^Demo finished: every step worked\.$/m,
  ];
  for (const step of steps) t.match(text, step);
  const finalTable = text.split('Final state:')[1] ?? '';
  t.notMatch(finalTable, /org\.qemu\.guest_agent\.0/, 'devid 1 is gone from the final table');
  t.match(finalTable, /org\.example\.app\s+Connected\s+hvc2/, 'the others keep their links');
});
