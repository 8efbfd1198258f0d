'use strict';
// docs/socketio.md, "After a gateway restart: rejoin your rooms", checked with the real
// socket.io-client: after a restart the client reconnects but is in no room;
// an emit it buffered while away is sent before its connect handler runs and is refused
// with not_in_room; the documented pattern (rejoin on every connect, hold room emits until
// then) delivers.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, clientPool, mintToken, delay } = require('./lib/gateway');
const { client, once, closeAll } = require('./lib/sio');

const pool = clientPool();
const gateways = [];

after(async () => {
  await closeAll();
  await pool.closeAll();
  for (const g of gateways) await g.stop('SIGKILL');
});

test('after a restart: a buffered room emit is refused not_in_room; the rejoin pattern delivers', async () => {
  const first = await startGateway();
  gateways.push(first);
  const port = first.port;
  // The reconnect is started by the test (s.connect()) once the listener below is in the
  // room on the new gateway, so no timing decides the outcome; it runs the same client code
  // as an automatic one (socketio_transport.test.js shows that one happening).
  const s = client(port, '/', {
    transports: ['websocket'],
    auth: { token: mintToken({ sub: 'rejoiner' }) },
    reconnection: false,
  });

  // the pattern of docs/socketio.md
  const rooms = new Set(['lobby']);
  let ready;
  let markReady;
  const notReady = () => { ready = new Promise((resolve) => { markReady = resolve; }); };
  notReady();
  let connects = 0;
  s.on('disconnect', notReady);
  s.on('connect', async () => {
    connects++;
    for (const room of rooms) await s.emitWithAck('join', { room });
    markReady();
  });
  async function sendToRoom(room, msg) {
    await ready;
    return s.emitWithAck('room:send', { room, msg });
  }

  await ready;
  assert.deepEqual(await sendToRoom('lobby', 'before'), { ok: true });

  const dropped = once(s, 'disconnect');
  assert.equal((await first.stop('SIGTERM')).code, 0);
  await dropped;
  const second = await startGateway({ listen: `127.0.0.1:${port}` });
  gateways.push(second);
  const listener = await pool.connect(second, { claims: { sub: 'listener' } });
  assert.deepEqual((await listener.request('join', { room: 'lobby' })).data, { ok: true, room: 'lobby' });

  // both made while the client is away: a plain emit (buffered) and one through the pattern
  const naive = s.emitWithAck('room:send', { room: 'lobby', msg: 'buffered' });
  const patterned = sendToRoom('lobby', 'after rejoin');
  assert.equal(s.connected, false);
  s.connect();
  const refused = await naive;
  assert.equal(refused.ok, false, JSON.stringify(refused));
  assert.equal(refused.error.code, 'not_in_room');
  assert.deepEqual(await patterned, { ok: true });
  assert.equal(connects, 2);
  const got = await listener.next('room:message');
  assert.equal(got.data.msg, 'after rejoin');
  await listener.sync();
  assert.deepEqual(listener.events('room:message').map((e) => e.data.msg), ['after rejoin']);
  s.disconnect();
  await delay(10);
});
