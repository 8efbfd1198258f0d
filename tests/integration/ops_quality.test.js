'use strict';
// A new connection's quality class is known as soon as its first ping is
// answered: the `connection:quality` event with a real class arrives within a
// round trip of the connect, not one check interval (default 10 s) later.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, clientPool } = require('./lib/gateway');

let gw;
const pool = clientPool();

before(async () => { gw = await startGateway(); }); // quality.check_interval: the default, 10 s
after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGTERM');
});

test('the first class comes with the first pong, well under the 10 s check interval', async () => {
  const t0 = Date.now();
  const c = await pool.connect(gw);
  const ev = await c.nextMatching((f) => f.event === 'connection:quality', 'connection:quality', { timeout: 9000 });
  const elapsed = Date.now() - t0;
  assert.equal(ev.data.quality, 'excellent', JSON.stringify(ev.data)); // loopback
  assert.ok(typeof ev.data.latency === 'number' && ev.data.latency < 100, JSON.stringify(ev.data));
  assert.ok(elapsed < 2000, `first class after ${elapsed} ms`);
  // reported once: no second event until something changes
  await c.sync();
  assert.equal(c.events('connection:quality').length, 1);
});
