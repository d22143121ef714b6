import t from 'tap';
import { chooseTransport } from '../../../agent/xenstore/default-transport.js';

t.test('chooseTransport picks the endpoint the way xs_open() does', async (t) => {
  const table: Array<[string, Record<string, string>, string[], string]> = [
    ['XENSTORED_PATH wins', { XENSTORED_PATH: '/tmp/xs.sock' }, ['/dev/xen/xenbus'], 'xenstored socket /tmp/xs.sock'],
    [
      'dom0: the daemon socket',
      {},
      ['/run/xenstored/socket', '/dev/xen/xenbus'],
      'xenstored socket /run/xenstored/socket',
    ],
    ['older dom0 layout', {}, ['/var/run/xenstored/socket'], 'xenstored socket /var/run/xenstored/socket'],
    ['guest: the xenbus device', {}, ['/dev/xen/xenbus', '/proc/xen/xenbus'], 'xenbus device /dev/xen/xenbus'],
    ['guest with only xenfs', {}, ['/proc/xen/xenbus'], 'xenbus device /proc/xen/xenbus'],
  ];
  for (const [what, env, present, description] of table) {
    const transport = chooseTransport({ env, exists: (p) => present.includes(p) });
    t.equal(transport.description, description, what);
    t.equal(transport.relativePaths, description.startsWith('xenbus device'), `${what}: relative paths`);
  }
  t.throws(() => chooseTransport({ env: {}, exists: () => false }), {
    name: 'XenstoreUnavailableError',
    message: /no xenstore endpoint: none of \/run\/xenstored\/socket, .*\/proc\/xen\/xenbus exists/,
  });
});
