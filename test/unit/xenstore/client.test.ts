import t from 'tap';
import { type Transaction, type WatchEvent, XenstoreClient } from '../../../agent/xenstore/client.js';
import { ConnectionClosedError, ProtocolError, XenstoreUnavailableError } from '../../../agent/xenstore/errors.js';
import { UnixSocketTransport } from '../../../agent/xenstore/transports/unix-socket.js';
import { encodeFrame, HEADER_SIZE, nulTerminated, XsType } from '../../../agent/xenstore/wire.js';
import { instantClock, scriptedPeer } from '../../helpers/scripted-peer.js';
import { shortDir } from '../../helpers/short-dir.js';

t.test('XenstoreClient requests', async (t) => {
  t.test('matches replies answered out of order by req_id', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    t.teardown(() => client.close());
    const a = client.readBuffer('/a');
    const b = client.read('/b');
    const reqA = await peer.next();
    const reqB = await peer.next();
    t.equal(reqA.type, XsType.READ);
    t.same(reqA.payload, Buffer.from('/a\0'), 'READ payload is the NUL-terminated path');
    t.not(reqA.reqId, reqB.reqId, 'req_ids differ');
    reqB.reply('value-b');
    reqA.reply(Buffer.from([0xff, 0x00, 0x41]));
    t.equal(await b, 'value-b');
    t.same(await a, Buffer.from([0xff, 0x00, 0x41]), 'binary values come back untouched');
  });

  t.test('encodes every operation as xs_wire.h says', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    t.teardown(() => client.close());
    const table: Array<[string, () => Promise<unknown>, number, string, string, unknown]> = [
      ['write', () => client.write('/x', 'v\0w'), XsType.WRITE, '/x\0v\0w', 'OK\0', undefined],
      ['mkdir', () => client.mkdir('/x/y'), XsType.MKDIR, '/x/y\0', 'OK\0', undefined],
      ['rm', () => client.rm('/x'), XsType.RM, '/x\0', 'OK\0', undefined],
      ['directory', () => client.directory('/d'), XsType.DIRECTORY, '/d\0', '1\x002\x00', ['1', '2']],
      ['empty directory', () => client.directory('/e'), XsType.DIRECTORY, '/e\0', '', []],
      [
        'get-perms',
        () => client.getPerms('/p'),
        XsType.GET_PERMS,
        '/p\0',
        'n3\x00r0\x00',
        [
          { domid: 3, access: 'none' },
          { domid: 0, access: 'read' },
        ],
      ],
      [
        'set-perms',
        () =>
          client.setPerms('/p', [
            { domid: 3, access: 'none' },
            { domid: 0, access: 'both' },
          ]),
        XsType.SET_PERMS,
        '/p\0n3\0b0\0',
        'OK\0',
        undefined,
      ],
      [
        'get-domain-path',
        () => client.getDomainPath(7),
        XsType.GET_DOMAIN_PATH,
        '7\0',
        '/local/domain/7\0',
        '/local/domain/7',
      ],
    ];
    for (const [what, call, type, payload, reply, expected] of table) {
      const result = call();
      const req = await peer.next();
      t.equal(req.type, type, `${what}: type`);
      t.equal(req.txId, 0, `${what}: outside any transaction`);
      t.same(req.payload, Buffer.from(payload), `${what}: payload`);
      req.reply(reply);
      t.same(await result, expected, `${what}: result`);
    }
  });

  t.test('turns XS_ERROR into XenstoreError with errno, op and path', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    t.teardown(() => client.close());
    const result = client.read('/missing');
    (await peer.next()).fail('ENOENT');
    await t.rejects(result, {
      name: 'XenstoreError',
      code: 'ENOENT',
      op: 'read',
      path: '/missing',
      origin: 'xenstored',
      message: 'xenstore read /missing: ENOENT (no such node)',
    });
    const odd = client.read('/odd');
    (await peer.next()).fail('EWHATEVER');
    await t.rejects(odd, { code: 'EIO', message: /unknown error name "EWHATEVER"/ });
  });

  t.test('checks limits before sending anything', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    t.teardown(() => client.close());
    await t.rejects(client.write('/big', Buffer.alloc(4096)), {
      code: 'E2BIG',
      origin: 'client',
      message: /4101 bytes; xenstore allows 4096/,
    });
    await t.rejects(client.read('relative/path'), {
      code: 'EINVAL',
      message: /relative paths need the guest xenbus device/,
    });
    await t.rejects(client.read('/bad path'), { code: 'EINVAL' });
    await t.rejects(client.setPerms('/p', []), RangeError);
    await t.rejects(client.getDomainPath(-1), RangeError);
    const ok = client.read('/after');
    const req = await peer.next();
    t.same(req.payload, Buffer.from('/after\0'), 'the first thing the server saw is the valid request');
    req.reply('x');
    await ok;
  });

  t.test('lists a large directory with DIRECTORY_PART after E2BIG, restarting when it changes', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    t.teardown(() => client.close());
    const result = client.directory('/big');
    (await peer.next()).fail('E2BIG');
    const parts: Array<[string, string]> = [
      ['/big\x000\0', '7\0a\0b\0'],
      ['/big\x004\0', '8\0c\0'], // generation changed: start again
      ['/big\x000\0', '8\0a\0b\0'],
      ['/big\x004\0', '8\0c\0\0'], // final part ends with an empty name
    ];
    for (const [payload, reply] of parts) {
      const req = await peer.next();
      t.equal(req.type, XsType.DIRECTORY_PART);
      t.same(req.payload.toString('latin1'), payload);
      req.reply(reply);
    }
    t.same(await result, ['a', 'b', 'c']);
  });
});

t.test('XenstoreClient watches', async (t) => {
  t.test('routes events interleaved with replies by token, including one before the ack', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    t.teardown(() => client.close());
    const watching = client.watch('/local/domain/3/device/console');
    const req = await peer.next();
    t.equal(req.type, XsType.WATCH);
    const [path, token] = req.payload.toString().split('\0');
    t.equal(path, '/local/domain/3/device/console');
    peer.event('/local/domain/3/device/console', token ?? ''); // the kernel may send this first
    const pendingRead = client.read('/r');
    const readReq = await peer.next();
    peer.event('/local/domain/3/device/console/1/state', token ?? '');
    peer.event('/other', 'unknown-token');
    req.reply('OK\0');
    readReq.reply('r-value');
    const watch = await watching;
    t.equal(await pendingRead, 'r-value', 'a reply between events resolves its request');
    const seen: WatchEvent[] = [];
    const consumed = (async () => {
      for await (const event of watch) {
        seen.push(event);
        if (seen.length === 2) break; // break calls return(): UNWATCH, awaiting its reply
      }
    })();
    const unwatch = await peer.next();
    t.equal(unwatch.type, XsType.UNWATCH);
    t.same(unwatch.payload, nulTerminated('/local/domain/3/device/console', token ?? ''));
    unwatch.reply('OK\0');
    await consumed;
    t.same(
      seen.map((e) => e.path),
      ['/local/domain/3/device/console', '/local/domain/3/device/console/1/state'],
      'the unknown-token event went nowhere',
    );
  });

  t.test('a failed registration leaves no watch behind', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    t.teardown(() => client.close());
    const watching = client.watch('/x');
    (await peer.next()).fail('EACCES');
    await t.rejects(watching, { code: 'EACCES', op: 'watch' });
  });

  t.test('rejects a second concurrent reader', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    t.teardown(() => client.close());
    const watching = client.watch('/x');
    (await peer.next()).reply('OK\0');
    const watch = await watching;
    const first = watch.next();
    await t.rejects(watch.next(), TypeError);
    await client.close();
    t.same(await first, { value: undefined, done: true }, 'close finishes the iteration');
  });
});

t.test('XenstoreClient connection loss', async (t) => {
  t.test('rejects pending requests and ends watches with ConnectionClosedError', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    const watching = client.watch('/w');
    (await peer.next()).reply('OK\0');
    const watch = await watching;
    const closed = new Promise<Error | undefined>((resolve) => client.on('close', resolve));
    const pending = client.read('/p');
    await peer.next();
    peer.drop();
    await t.rejects(pending, {
      name: 'ConnectionClosedError',
      message: /xenstore read \/p: the connection to xenstored socket .* was lost/,
    });
    await t.rejects(watch.next(), ConnectionClosedError, 'the watcher is told');
    t.type(await closed, ConnectionClosedError, "'close' carries the reason");
    t.equal(client.connected, false);
    await t.rejects(client.read('/later'), { name: 'ConnectionClosedError', message: /is closed/ });
  });

  t.test('a reply for an unknown req_id is a protocol error that drops the connection', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    const closed = new Promise<Error | undefined>((resolve) => client.on('close', resolve));
    const pending = client.read('/p');
    const req = await peer.next();
    peer.sendRaw(encodeFrame({ type: XsType.READ, reqId: req.reqId + 1000, txId: 0, payload: Buffer.from('x') }));
    await t.rejects(pending, ConnectionClosedError);
    const reason = await closed;
    t.type((reason as Error & { cause?: unknown }).cause, ProtocolError);
    t.match(
      String((reason as Error & { cause?: Error }).cause?.message),
      /req_id \d+, which no request is waiting for/,
    );
  });

  t.test('an oversized reply header closes the connection cleanly', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    const pending = client.read('/p');
    await peer.next();
    const header = Buffer.alloc(HEADER_SIZE);
    header.writeUInt32LE(XsType.READ, 0);
    header.writeUInt32LE(1 << 30, 12);
    peer.sendRaw(header);
    await t.rejects(pending, { name: 'ConnectionClosedError', cause: { name: 'ProtocolError' } });
    t.equal(client.connected, false);
  });

  t.test('a reply of the wrong type is a protocol error', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    const pending = client.read('/p');
    const req = await peer.next();
    peer.sendRaw(encodeFrame({ type: XsType.WRITE, reqId: req.reqId, txId: 0, payload: Buffer.from('OK\0') }));
    await t.rejects(pending, { name: 'ProtocolError', message: /a WRITE reply to a READ request/ });
  });

  t.test('reconnects with retryStrategy and re-registers watches, which fire again', async (t) => {
    const peer = await scriptedPeer(t);
    const clock = instantClock();
    const client = await XenstoreClient.connect({
      transport: peer.transport,
      clock,
      retryStrategy: (attempt) => (attempt <= 3 ? attempt * 100 : null),
    });
    t.teardown(() => client.close());
    const watching = client.watch('/w');
    const first = await peer.next();
    first.reply('OK\0');
    const [, token] = first.payload.toString().split('\0');
    peer.event('/w', token ?? '');
    const watch = await watching;
    t.same((await watch.next()).value, { path: '/w', token });
    const reconnecting = new Promise((resolve) => client.on('reconnecting', resolve));
    const reconnected = new Promise<void>((resolve) => client.on('reconnected', resolve));
    peer.drop(0);
    t.match(await reconnecting, { attempt: 1, delayMs: 100 });
    const again = await peer.next();
    t.equal(again.connection, 1, 'on a new connection');
    t.equal(again.type, XsType.WATCH);
    t.same(again.payload, first.payload, 'same path and token');
    again.reply('OK\0');
    peer.event('/w', token ?? '', 1);
    await reconnected;
    t.same((await watch.next()).value, { path: '/w', token }, 'the re-registration event reaches the watcher');
    t.same(clock.slept, [100]);
    const read = client.read('/after');
    (await peer.next()).reply('fine');
    t.equal(await read, 'fine', 'requests work again');
  });

  t.test('gives up when retryStrategy returns null and says how often it tried', async (t) => {
    const dir = shortDir(t);
    const clock = instantClock();
    const peer = await scriptedPeer(t);
    let attempts = 0;
    const client = await XenstoreClient.connect({
      transport: {
        description: 'flaky',
        relativePaths: false,
        connect: (signal) => {
          attempts++;
          return attempts === 1
            ? peer.transport.connect(signal)
            : new UnixSocketTransport(`${dir}/nothing`).connect(signal);
        },
      },
      clock,
      retryStrategy: (attempt) => (attempt <= 2 ? 5 : null),
    });
    const closed = new Promise<Error | undefined>((resolve) => client.on('close', resolve));
    peer.drop();
    const reason = await closed;
    t.match(reason?.message, /gave up reconnecting to flaky after 2 attempts/);
    t.type((reason as Error & { cause?: unknown }).cause, XenstoreUnavailableError, 'the last failure is the cause');
    t.equal(attempts, 3);
  });

  t.test('UnixSocketTransport explains a missing socket', async (t) => {
    const dir = shortDir(t);
    await t.rejects(new UnixSocketTransport(`${dir}/none`).connect(), {
      name: 'XenstoreUnavailableError',
      code: 'ENOXENSTORE',
      message: /cannot connect to xenstored at .*none: it does not exist/,
    });
    const aborted = AbortSignal.abort(new Error('stop'));
    await t.rejects(new UnixSocketTransport(`${dir}/none`).connect(aborted), { message: 'stop' });
  });
});

t.test('XenstoreClient.transaction', async (t) => {
  t.test('runs the function again after EAGAIN at commit, then commits', async (t) => {
    const peer = await scriptedPeer(t);
    const clock = instantClock();
    const client = await XenstoreClient.connect({ transport: peer.transport, clock });
    t.teardown(() => client.close());
    let runs = 0;
    const done = client.transaction(async (tx) => {
      runs++;
      await tx.write('/t/a', String(runs));
      return `run ${runs}`;
    });
    for (const [txId, endReply] of [
      [11, 'EAGAIN'],
      [12, 'OK'],
    ] as const) {
      const start = await peer.next();
      t.equal(start.type, XsType.TRANSACTION_START);
      t.same(start.payload, Buffer.from('\0'));
      start.reply(`${txId}\0`);
      const write = await peer.next();
      t.equal(write.txId, txId, 'operations carry the transaction id');
      write.reply('OK\0');
      const end = await peer.next();
      t.equal(end.type, XsType.TRANSACTION_END);
      t.same(end.payload, Buffer.from('T\0'));
      if (endReply === 'EAGAIN') end.fail('EAGAIN');
      else end.reply('OK\0');
    }
    t.equal(await done, 'run 2');
    t.same(clock.slept, [1], 'backed off once');
  });

  t.test('gives up after maxAttempts with a clear EAGAIN', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport, clock: instantClock() });
    t.teardown(() => client.close());
    const done = client.transaction(async () => 'never', { maxAttempts: 2 });
    for (let i = 1; i <= 2; i++) {
      (await peer.next()).reply(`${i}\0`);
      (await peer.next()).fail('EAGAIN');
    }
    await t.rejects(done, { code: 'EAGAIN', origin: 'client', message: /still conflicting after 2 attempts/ });
  });

  t.test('aborts and passes on an error thrown by the function; the transaction is unusable after', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    t.teardown(() => client.close());
    let leaked: Transaction | undefined;
    const done = client.transaction(async (tx) => {
      leaked = tx;
      throw new Error('changed my mind');
    });
    (await peer.next()).reply('5\0');
    const end = await peer.next();
    t.same(end.payload, Buffer.from('F\0'), 'aborted with F');
    t.equal(end.txId, 5);
    end.reply('OK\0');
    await t.rejects(done, { message: 'changed my mind' });
    t.ok(leaked, 'the function ran');
    await t.rejects(async () => leaked?.read('/x'), { code: 'EINVAL', message: /already ended/ });
  });

  t.test('a malformed transaction id is a protocol error', async (t) => {
    const peer = await scriptedPeer(t);
    const client = await XenstoreClient.connect({ transport: peer.transport });
    t.teardown(() => client.close());
    const done = client.transaction(async () => 1);
    (await peer.next()).reply('zero\0');
    await t.rejects(done, { name: 'ProtocolError', message: /not a transaction id/ });
  });
});
