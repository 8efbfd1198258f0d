'use strict';
// One message path for both protocols: a room holding a Socket.IO client and a native /ws
// client; each receives the other's messages in its own encoding (the event is encoded once
// per protocol, not once per recipient). Binary values cross over too: a Buffer from a
// Socket.IO client reaches a /ws client as {"_binary": "<base64>"}, and back.

const path = require('node:path');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, clientPool, TEST_POLICIES } = require('./lib/gateway');
const { connect, once, ack, closeAll } = require('./lib/sio');

let gw;
const pool = clientPool();

before(async () => {
  gw = await startGateway({ policy: path.join(TEST_POLICIES, 'socketio.lua') });
});

after(async () => {
  await closeAll();
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
});

for (const transports of [['websocket'], ['polling']]) {
  test(`a room with a Socket.IO client (${transports[0]}) and a /ws client: each gets the other's messages`, async () => {
    const room = `lobby-${transports[0]}`;
    const sio = await connect(gw, '/', { transports, auth: { user: 'sio-user' } });
    const ws = await pool.connect(gw);
    assert.deepEqual((await ack(sio, 'join', { room }))[0], { ok: true, room });
    assert.deepEqual((await ws.request('join', { room })).data, { ok: true, room });

    // Socket.IO -> /ws: the native envelope
    assert.deepEqual((await ack(sio, 'room:send', { room, msg: { text: 'hi from sio', n: [1, 2] } }))[0], { ok: true });
    const native = await ws.next('room:message');
    assert.deepEqual(native.data, { room, from: 'sio-user', msg: { text: 'hi from sio', n: [1, 2] } });

    // /ws -> Socket.IO: an event
    const got = once(sio, 'room:message');
    assert.deepEqual((await ws.request('room:send', { room, msg: 'hi from ws' })).data, { ok: true });
    const [ev] = await got;
    assert.equal(ev.room, room);
    assert.equal(ev.msg, 'hi from ws');
    assert.equal(typeof ev.from, 'string');
    assert.notEqual(ev.from, 'sio-user');

    // binary both ways
    const bytes = Buffer.from([0, 1, 2, 253, 254, 255]);
    await ack(sio, 'room:send', { room, msg: { file: bytes } });
    const nb = await ws.next('room:message');
    assert.deepEqual(nb.data.msg, { file: { _binary: bytes.toString('base64') } });
    const gotBin = once(sio, 'room:message');
    await ws.request('room:send', { room, msg: { file: { _binary: bytes.toString('base64') } } });
    const [bin] = await gotBin;
    assert.ok(Buffer.isBuffer(bin.msg.file) && bin.msg.file.equals(bytes), 'a Buffer for the Socket.IO client');
    sio.disconnect();
  });
}

test('fan-out to many Socket.IO and /ws members at once', async () => {
  const room = 'crowd';
  const sios = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    connect(gw, '/', { transports: [i % 2 ? 'websocket' : 'polling'], forceNew: true })));
  const wss = await Promise.all(Array.from({ length: 20 }, () => pool.connect(gw)));
  await Promise.all(sios.map((s) => ack(s, 'join', { room })));
  await Promise.all(wss.map((w) => w.request('join', { room })));
  const waits = sios.map((s) => once(s, 'announce'));
  const wwaits = wss.map((w) => w.next('announce'));
  await ack(sios[0], 'publish', { room, body: { seq: 1 } });
  for (const [d] of await Promise.all(waits)) assert.deepEqual(d, { seq: 1 });
  for (const f of await Promise.all(wwaits)) assert.deepEqual(f.data, { seq: 1 });
  sios.forEach((s) => s.disconnect());
});
