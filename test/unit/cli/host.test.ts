import { PassThrough } from 'node:stream';
import t from 'tap';
import { runHost } from '../../../agent/cli/host.js';
import { main } from '../../../agent/cli/main.js';
import { EXIT, UsageError } from '../../../agent/cli/usage.js';
import { hostWorld } from '../../helpers/host-world.js';

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  return {
    io: { stdin: new PassThrough(), stdout, stderr },
    get out() {
      return out;
    },
    get err() {
      return err;
    },
  };
}

t.test('xen-channel host: usage', async (t) => {
  const neverConnect = () => Promise.reject(new Error('must not connect for a usage error'));
  const cases: Array<[string[], RegExp]> = [
    [['attach', 'vm', '--name', 'a'], /needs either --socket PATH or --pty/],
    [['attach', 'vm', '--name', 'a', '--socket', '/r', '--pty'], /needs either --socket PATH or --pty/],
    [['attach', 'vm', '--socket', '/r'], /needs --name NAME/],
    [['attach', '--name', 'a', '--pty'], /exactly one DOMAIN/],
    [['attach', 'vm', '--name', 'a', '--socket', 'rel.sock'], /--socket expects an absolute path/],
    [['attach', 'vm', '--name', 'a', '--socket', '/r', '--listen', '--connect'], /exclude each other/],
    [['attach', 'vm', '--name', 'a', '--pty', '--connect'], /go with --socket/],
    [['attach', 'vm', '--name', 'a', '--pty', '--devid', 'x'], /--devid expects a number/],
    [['attach', 'vm', '--name', 'a', '--pty', '--timeout', '0'], /--timeout expects a positive number/],
    [['detach', 'vm'], /either a channel NAME or --devid N/],
    [['detach', 'vm', 'a', '--devid', '2'], /either a channel NAME or --devid N/],
    [['list', 'a', 'b'], /at most one DOMAIN/],
    [['plug'], /host needs attach, detach or list, got "plug"/],
  ];
  for (const [argv, message] of cases) {
    await t.rejects(runHost(argv, neverConnect, io().io), { constructor: UsageError, message }, argv.join(' '));
  }
  const help = io();
  t.equal(await runHost(['--help'], neverConnect, help.io), EXIT.ok);
  t.match(help.out, /xen-channel host attach DOMAIN --name NAME --socket PATH \[--listen\|--connect\]/);
  const viaMain = io();
  t.equal(await main(['host', 'attach', '--help'], viaMain.io), EXIT.ok, 'main passes --help to host');
  t.match(viaMain.out, /^Usage \(in dom0, as root/);
});

t.test('xen-channel host: attach, list, detach against a simulated dom0', async (t) => {
  const w = await hostWorld(t);
  const makeEnv = async (note: (line: string) => void) => ({
    ...w.env,
    note,
    close: async () => {},
  });

  const attach = io();
  t.equal(
    await runHost(['attach', 'vm-a', '--name', 'org.example.a', '--socket', '/run/a.sock'], makeEnv, attach.io),
    EXIT.ok,
  );
  t.equal(attach.out, 'attached: org.example.a on vm-a (3) devid 2, socket /run/a.sock, frontend 4 (Connected)\n');
  t.match(
    attach.err,
    /^xen-channel: attached org\.example\.a to domain vm-a \(3\) as devid 2 \(socket \/run\/a\.sock \(listen\)\)\n$/,
  );

  const pty = io();
  await runHost(['attach', '3', '--name', 'org.example.p', '--pty', '--json'], makeEnv, pty.io);
  t.match(JSON.parse(pty.out), { devid: 3, connection: 'pty', tty: '/dev/pts/5', already: false });

  const table = io();
  await runHost(['list'], makeEnv, table.io);
  const lines = table.out.trimEnd().split('\n');
  t.match(lines[0], /^DOMAIN +DOMID +DEVID +NAME +CONNECTION +PATH\/PTY +FRONTEND +BACKEND +XL$/);
  t.match(
    lines[1],
    /^vm-a +3 +1 +org\.example\.boot +socket +\/run\/boot\.sock +4 \(Connected\) +4 \(Connected\) +yes$/,
  );
  t.match(lines[2], /^vm-a +3 +2 +org\.example\.a +socket +\/run\/a\.sock +4 \(Connected\) +4 \(Connected\) +yes$/);
  t.match(lines[3], /^vm-a +3 +3 +org\.example\.p +pty +\/dev\/pts\/5 +4 \(Connected\)/);
  t.equal(lines.length, 4);

  const json = io();
  await runHost(['list', 'vm-a', '--json'], makeEnv, json.io);
  t.equal(JSON.parse(json.out).length, 3);

  const detach = io();
  t.equal(await runHost(['detach', 'vm-a', 'org.example.a'], makeEnv, detach.io), EXIT.ok);
  t.equal(detach.out, 'detached: org.example.a from vm-a (3) devid 2\n');
  const after = io();
  await runHost(['list', 'vm-a', '--json'], makeEnv, after.io);
  t.same(
    JSON.parse(after.out).map((c: { devid: number }) => c.devid),
    [1, 3],
  );
});
