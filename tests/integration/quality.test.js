'use strict';
// Connection quality measured by the gateway (docs/quality.md): a TCP relay
// between the client and the gateway delays or drops the client's pongs, and
// the connection's class follows: excellent -> poor -> excellent, by latency
// and then by packet loss, with the `connection:quality` event, the policy's
// quality_change hook and the websocket_connection_quality gauge following it.
// Short check intervals via --set.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { startGateway, clientPool, delay, TEST_POLICIES } = require('./lib/gateway');
const { ENV, ARGS, wsOpts, metrics, startRelay } = require('./lib/traffic');

const POLICY = path.join(TEST_POLICIES, 'quality.lua');
const CHECK_S = 0.2;
const CLASSES = ['excellent', 'good', 'fair', 'poor'];
let gw;
let relay;
const pool = clientPool();

before(async () => {
  gw = await startGateway({
    policy: POLICY,
    env: ENV,
    args: ARGS,
    set: [`quality.check_interval=${CHECK_S}`, 'quality.pong_timeout=2', 'quality.stability_window=60'],
  });
  relay = await startRelay(gw.port);
});

// A graceful stop must exit 0: under an ASan build a leak would fail it here.
after(async () => {
  await pool.closeAll();
  if (relay) await relay.close();
  if (gw) {
    const r = await gw.stop('SIGTERM');
    assert.equal(r.code, 0, `gateway exit ${JSON.stringify(r)}\n${gw.logs().slice(-3000)}`);
  }
});

async function gauge() {
  const m = await metrics(gw.port);
  const out = {};
  for (const q of CLASSES) out[q] = m.get(`websocket_connection_quality{quality="${q}"}`);
  return out;
}

// Waits for the next connection:quality event with the given class; returns it
// and every class event seen since `from` (an index into client.received).
async function classBecomes(client, quality, timeout = 20000) {
  const ev = await client.nextMatching(
    (f) => f.event === 'connection:quality' && f.data.quality === quality,
    `connection:quality ${quality}`, { timeout });
  return ev.data;
}

function classEvents(client, from = 0) {
  return client.received.slice(from).filter((f) => f.event === 'connection:quality').map((f) => f.data.quality);
}

test('a fresh connection is measured and reported excellent, with the event and the gauge', async () => {
  const c = await pool.connect(gw, { path: '/ws?user=fresh', wsOptions: wsOpts('fresh') });
  const q = await classBecomes(c, 'excellent', 5000);
  assert.deepEqual(Object.keys(q).sort(), ['jitter', 'latency', 'packetLoss', 'quality', 'stability']);
  assert.ok(q.latency >= 0 && q.latency < 100, JSON.stringify(q));
  assert.equal(q.packetLoss, 0);
  assert.equal(q.stability, 100);
  const hook = await c.next('quality:changed');
  assert.deepEqual(hook.data, { from: 'unknown', to: 'excellent', stability: 100, class_now: 'excellent' });
  const g = await gauge();
  if (g.excellent !== undefined) assert.ok(g.excellent >= 1, JSON.stringify(g));
  // asked with an ack: the same report
  const ack = await c.request('connection:quality');
  assert.equal(ack.data.quality, 'excellent');
  assert.equal(ack.data.packetLoss, 0);
  assert.ok(ack.data.latency < 100);
  // asked without an ack: the event
  c.send('connection:quality');
  const ev = await c.next('connection:quality');
  assert.equal(ev.data.quality, 'excellent');
  await c.close();
});

test('delayed pongs move a connection from excellent to poor and back, event and gauge following', async () => {
  relay.mode = 'pass'; // whatever a test before left
  const c = await pool.connect(relay.port, { path: '/ws?user=relayed', wsOptions: wsOpts('relayed') });
  await classBecomes(c, 'excellent', 5000);
  const g0 = await gauge();

  relay.mode = 'delay';
  relay.delayMs = 1200; // within the pong timeout (2 s): a slow link, not a lossy one
  const from = c.received.length;
  const poor = await classBecomes(c, 'poor');
  assert.ok(poor.latency >= 1000, JSON.stringify(poor));
  assert.equal(poor.packetLoss, 0, JSON.stringify(poor));
  // on the way down it went through the classes in order, each one reported once
  const seen = classEvents(c, from);
  for (let i = 1; i < seen.length; i++) {
    assert.ok(CLASSES.indexOf(seen[i]) > CLASSES.indexOf(seen[i - 1]), `not monotonic: ${seen}`);
  }
  assert.equal(seen[seen.length - 1], 'poor');
  // the policy's hook runs right after the event is queued: its own event may come in the
  // next read (a slow sanitizer build showed it)
  const hook = await c.nextMatching((f) => f.event === 'quality:changed' && f.data.to === 'poor', 'quality:changed to poor');
  assert.equal(hook.data.from, seen[seen.length - 2] || 'excellent', JSON.stringify(hook.data));
  const g1 = await gauge();
  if (g1.poor !== undefined) {
    assert.equal(g1.poor, (g0.poor || 0) + 1);
    assert.equal(g1.excellent, g0.excellent - 1);
  }
  const asked = await c.request('connection:quality');
  assert.equal(asked.data.quality, 'poor');

  relay.mode = 'pass';
  const back = await classBecomes(c, 'excellent');
  assert.ok(back.latency < 100, JSON.stringify(back));
  const g2 = await gauge();
  if (g2.poor !== undefined) assert.deepEqual(g2, g0);
  assert.ok(relay.pongs.delayed >= 9, JSON.stringify(relay.pongs));
  await c.close();
});

test('dropped pongs are packet loss: poor, and excellent again once the losses leave the window', async () => {
  relay.mode = 'pass'; // whatever a test before left
  const c = await pool.connect(relay.port, { path: '/ws?user=lossy', wsOptions: wsOpts('lossy') });
  await classBecomes(c, 'excellent', 5000);
  relay.mode = 'drop';
  const from = c.received.length;
  const poor = await classBecomes(c, 'poor');
  assert.ok(poor.packetLoss >= 10, JSON.stringify(poor));
  assert.ok(poor.latency < 100, JSON.stringify(poor)); // the samples it has are fast
  assert.ok(classEvents(c, from).length >= 1);
  assert.ok(c.open, 'a lossy link is reported, not dropped');
  relay.mode = 'pass';
  const back = await classBecomes(c, 'excellent', 30000); // 20 answered pings clear the window
  assert.equal(back.packetLoss, 0);
  assert.ok(relay.pongs.dropped >= 2);
  await c.close();
});

test('reconnects of the same identity lower its stability', async () => {
  for (let i = 0; i < 2; i++) {
    const c = await pool.connect(gw, { path: '/ws?user=flaky', wsOptions: wsOpts('flaky') });
    await classBecomes(c, 'excellent', 5000);
    await c.close();
  }
  await delay(100);
  const c = await pool.connect(gw, { path: '/ws?user=flaky', wsOptions: wsOpts('flaky') });
  const q = await classBecomes(c, 'excellent', 5000); // stability is not part of the default classes
  assert.equal(q.stability, 60); // two reconnects in the window: 100 - 2 x 20
  const steady = await pool.connect(gw, { path: '/ws?user=steady', wsOptions: wsOpts('steady') });
  assert.equal((await classBecomes(steady, 'excellent', 5000)).stability, 100);
  await c.close();
  await steady.close();
});

test('quality.check_interval=0 turns the measurement off: the class stays unknown', async () => {
  const off = await startGateway({ policy: POLICY, env: ENV, args: ARGS, set: ['quality.check_interval=0'] });
  try {
    const c = await pool.connect(off, { wsOptions: wsOpts('unmeasured') });
    await delay(800);
    assert.equal(c.events('connection:quality').length, 0);
    const ack = await c.request('connection:quality');
    assert.equal(ack.data.quality, 'unknown');
    await c.close();
  } finally {
    await off.stop('SIGKILL');
  }
});
