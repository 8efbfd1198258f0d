'use strict';
// Socket.IO namespaces and what the policy sees (tests/policies/socketio.lua): "/" and the
// declared "/admin" multiplexed on one Engine.IO connection, each its own gateway
// connection; an unknown namespace; the auth payload in req.auth; refusals from the connect
// hook; a server-side disconnect (conn:close) and the client connecting again.

const path = require('node:path');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, TEST_POLICIES } = require('./lib/gateway');
const { manager, track, connect, connectError, once, ack, closeAll } = require('./lib/sio');

let gw;

before(async () => {
  gw = await startGateway({ policy: path.join(TEST_POLICIES, 'socketio.lua') });
});

after(async () => {
  await closeAll();
  if (gw) await gw.stop('SIGKILL');
});

for (const transports of [['websocket'], ['polling', 'websocket']]) {
  test(`${transports.join('+')}: "/" and "/admin" share one connection and are two gateway connections`, async () => {
    const m = manager(gw, { transports });
    // (a Manager's sockets connect by themselves: connecting one twice is a protocol error)
    const main = track(m.socket('/', { auth: { user: 'ann', learnerId: 'l-1', nested: { a: [1, 2] } } }));
    const welcome = once(main, 'welcome');
    await once(main, 'connect');
    const [w] = await welcome;
    // the policy saw the CONNECT auth payload as req.auth, the namespace and the protocol
    assert.deepEqual(w.auth, { user: 'ann', learnerId: 'l-1', nested: { a: [1, 2] } });
    assert.equal(w.namespace, '/');
    assert.equal(w.protocol, 'socketio');

    const admin = track(m.socket('/admin', { auth: { user: 'ann-admin' } }));
    const aw = once(admin, 'welcome');
    await once(admin, 'connect');
    assert.equal((await aw)[0].namespace, '/admin');
    assert.equal(admin.io, main.io, 'one Manager: one Engine.IO connection for both namespaces');

    const [me] = await ack(main, 'whoami');
    const [ad] = await ack(admin, 'whoami');
    assert.equal(me.namespace, '/');
    assert.equal(ad.namespace, '/admin');
    assert.equal(me.user, 'ann');
    assert.equal(ad.user, 'ann-admin');
    assert.notEqual(me.id, ad.id, 'each namespace is its own connection');

    // leaving one namespace leaves the other working
    admin.disconnect();
    const [again] = await ack(main, 'echo', 'still here');
    assert.equal(again, 'still here');
    main.disconnect();
  });
}

test('an unknown namespace gets CONNECT_ERROR "Invalid namespace"; "/" on the same connection is fine', async () => {
  const main = await connect(gw, '/', { transports: ['websocket'] });
  const err = await connectError(gw, '/nope', { transports: ['websocket'] });
  assert.equal(err.message, 'Invalid namespace');
  const [res] = await ack(main, 'echo', 1);
  assert.equal(res, 1);
  main.disconnect();
});

test('the connect hook refusing: CONNECT_ERROR {message: code, data: {reason}}', async () => {
  for (const transports of [['websocket'], ['polling']]) {
    const err = await connectError(gw, '/', { transports, auth: { refuse: true } });
    assert.equal(err.message, 'banned');
    assert.deepEqual(err.data, { reason: 'go away' });
  }
});

test('an ack with several arguments (gw.args)', async () => {
  const s = await connect(gw, '/', { transports: ['websocket'] });
  const res = await ack(s, 'two-args', 'a', 'b', 'c');
  assert.deepEqual(res, [3, 'a']);
  s.disconnect();
});

test('conn:close() disconnects the namespace ("io server disconnect"); the client can connect again', async () => {
  for (const transports of [['websocket'], ['polling']]) {
    const s = await connect(gw, '/', { transports });
    const [before] = await ack(s, 'whoami');
    const gone = once(s, 'disconnect');
    s.emit('kick');
    const [reason] = await gone;
    assert.equal(reason, 'io server disconnect', `${transports[0]}: the server's own disconnect`);
    assert.equal(s.connected, false);
    // socket.io does not reconnect after a server disconnect by itself: the app does
    s.connect();
    await once(s, 'connect');
    const [after] = await ack(s, 'whoami');
    assert.notEqual(after.id, before.id, 'a new gateway connection');
    s.disconnect();
  }
});

test('send_binary reaches a Socket.IO client as event "binary" with a Buffer', async () => {
  const s = await connect(gw, '/', { transports: ['websocket'] });
  const got = once(s, 'binary');
  s.emit('send-binary', Buffer.from([0, 255, 1, 254]));
  const [buf] = await got;
  assert.ok(Buffer.from(buf).equals(Buffer.from([0, 255, 1, 254])));
  s.disconnect();
});

test('a room with members in two namespaces: each gets the event in its own namespace', async () => {
  const main = await connect(gw, '/', { transports: ['websocket'] });
  const admin = await connect(gw, '/admin', { transports: ['websocket'], forceNew: true });
  for (const s of [main, admin]) assert.deepEqual((await ack(s, 'join', { room: 'mixed-ns' }))[0], { ok: true, room: 'mixed-ns' });
  const a = once(main, 'announce');
  const b = once(admin, 'announce');
  main.emit('publish', { room: 'mixed-ns', body: { text: 'to both', bin: Buffer.from([9, 8, 7]) } });
  for (const [got] of [await a, await b]) {
    assert.equal(got.text, 'to both');
    assert.ok(Buffer.from(got.bin).equals(Buffer.from([9, 8, 7])));
  }
  main.disconnect();
  admin.disconnect();
});
