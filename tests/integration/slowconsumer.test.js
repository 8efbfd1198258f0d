'use strict';
// A subscriber that stops reading must be cut off once its send queue passes
// server.sendq_max_bytes, without slowing or losing messages for a subscriber
// that keeps up, and without hurting the gateway.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, clientPool } = require('./lib/gateway');

const SENDQ_MAX = 2 * 1024 * 1024;
const MSG_BYTES = 200000;
// Far more than the kernel can buffer for the stalled reader (about 4 MiB of
// send buffer plus its receive window) plus the 2 MiB queue.
const COUNT = 120;

let gw;
const pool = clientPool();

before(async () => {
  gw = await startGateway({
    // the test sends thousands of messages: no per-minute limit (docs/ratelimit.md)
    set: [`server.sendq_max_bytes=${SENDQ_MAX}`, 'server.max_message_size=262144', 'ratelimit.per_minute=0'],
  });
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
});

test('a stalled subscriber is closed while a fast one gets every message', async () => {
  const [slow, fast, pub] = await Promise.all([pool.connect(gw), pool.connect(gw), pool.connect(gw)]);
  for (const c of [slow, fast, pub]) {
    const ack = await c.request('join', { room: 'firehose' });
    assert.deepEqual(ack.data, { ok: true, room: 'firehose' });
  }

  // Stop reading on the slow client: its TCP window fills, then the gateway's queue.
  slow.ws._socket.pause();

  const body = 'p'.repeat(MSG_BYTES);
  const started = Date.now();
  for (let i = 0; i < COUNT; i++) {
    const ack = await pub.request('room:send', { room: 'firehose', msg: { i, body } }, { timeout: 20000 });
    assert.deepEqual(ack.data, { ok: true }, `publish ${i}: ${JSON.stringify(ack)}`);
    // Pace on the fast reader so its own queue never grows: only the stalled
    // client can be the slow consumer here.
    const ev = await fast.next('room:message', { timeout: 20000 });
    assert.equal(ev.data.msg.i, i, 'fast subscriber receives in order');
    assert.equal(ev.data.msg.body.length, MSG_BYTES);
  }
  const elapsed = Date.now() - started;

  assert.equal(fast.events('room:message').length, COUNT, 'fast subscriber got every message');
  assert.ok(fast.open, 'fast subscriber stays connected');
  assert.equal(pub.events('room:message').length, 0, 'publisher does not get its own messages');

  // Let the stalled client read again: it drains what the kernel held and then
  // sees the gateway's 4008 close, or the end of the TCP connection.
  slow.ws._socket.resume();
  const { code } = await slow.waitClose(30000);
  assert.ok(code === 4008 || code === 1006,
    `slow consumer close code ${code} (want 4008, or 1006 when TCP just ended); ` +
    `${elapsed} ms to publish\n${gw.logs().slice(-2000)}`);
  const got = slow.events('room:message').length;
  assert.ok(got < COUNT, `slow consumer was cut off, not served everything (got ${got}/${COUNT})`);

  // Everybody else is unaffected.
  await fast.sync();
  await pub.sync();
  assert.ok(gw.alive(), 'gateway still running');
  const fresh = await pool.connect(gw);
  assert.equal((await fresh.request('echo', 'after slow consumer')).data, 'after slow consumer');

  // The room no longer delivers to the dropped connection and still works for the rest.
  await pub.request('room:send', { room: 'firehose', msg: 'tail' });
  const tail = await fast.next('room:message');
  assert.equal(tail.data.msg, 'tail');
});
