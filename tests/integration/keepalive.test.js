'use strict';
// Keepalive: the gateway pings every connection, measures the round trip, and
// drops a peer that stops answering (a dead peer must be gone within a minute;
// these tests shrink the intervals to keep it quick). Also the HTTP endpoints.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startGateway, clientPool, delay } = require('./lib/gateway');

let gw;
const pool = clientPool();
const PING_S = 0.3;
const IDLE_S = 1.2;

before(async () => {
  gw = await startGateway({
    set: [`server.ping_interval=${PING_S}`, `server.idle_timeout=${IDLE_S}`],
  });
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
});

test('the gateway pings and a client that answers stays connected past the idle timeout', async () => {
  const c = await pool.connect(gw);
  let pings = 0;
  c.ws.on('ping', () => { pings++; });
  await delay(IDLE_S * 3 * 1000);
  assert.ok(c.open, 'a live client must not be dropped');
  assert.ok(pings >= 2, `expected periodic pings, saw ${pings}`);
  assert.equal((await c.request('echo', 'still here')).data, 'still here');
});

test('a peer that answers nothing is dropped after the idle timeout', async () => {
  // autoPong: false makes this client behave like a vanished peer
  const dead = await pool.connect(gw, { wsOptions: { autoPong: false } });
  const alive = await pool.connect(gw);
  const t0 = Date.now();
  await dead.waitClose((IDLE_S + PING_S) * 1000 + 5000);
  const took = Date.now() - t0;
  assert.ok(took >= IDLE_S * 1000 - 200, `dropped too early (${took} ms)`);
  assert.ok(alive.open, 'the other client is unaffected');
  assert.equal((await alive.request('echo', 1)).data, 1);
});

function get(path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: gw.port, path }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}

test('HTTP: /healthz and /readyz answer, unknown paths are 404, /ws without upgrade is 426', async () => {
  assert.deepEqual(await get('/healthz'), { status: 200, body: 'ok\n' });
  assert.deepEqual(await get('/readyz'), { status: 200, body: 'ready\n' });
  assert.equal((await get('/nope')).status, 404);
  assert.equal((await get('/ws')).status, 426);
});

test('a WebSocket upgrade on an unknown path is refused and the gateway goes on', async () => {
  await assert.rejects(pool.connect(gw, { path: '/elsewhere' }), /cannot connect/);
  const c = await pool.connect(gw);
  assert.equal((await c.request('echo', 'ok')).data, 'ok');
});

test('a client that sends text keeps its connection through hundreds of quality pings', async (t) => {
  // lws checks a pong's payload as UTF-8 once the connection has sent text; the gateway's
  // ping payloads must stay valid UTF-8 for every ping number (a raw counter broke at 128)
  const fast = await startGateway({ set: ['quality.check_interval=0.01', 'server.ping_interval=5', 'server.idle_timeout=20'] });
  t.after(() => fast.stop('SIGKILL'));
  const c = await pool.connect(fast);
  await c.request('echo', 'text first');
  let pings = 0;
  c.ws.on('ping', () => { pings++; });
  const t0 = Date.now();
  while (pings < 300 && Date.now() - t0 < 20000) await delay(100);
  assert.ok(pings >= 300, `only ${pings} pings in 20 s`);
  assert.ok(c.open, `closed: ${JSON.stringify(c.closeInfo)}`);
  assert.equal((await c.request('echo', 'still open')).data, 'still open');
});
