// The native client (clients/js) against the real gateway: acks and errors,
// rooms, reconnect after a restart with rooms joined again, token refresh,
// and quality.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { AivoClient, AivoError, ConnectionQuality, clientQualitySource, backoffDelay } from '../../clients/js/index.js';
import { startGateway, connect, mintToken, waitFor, nextEvent, WebSocket, KIT_POLICY, delay } from './lib.mjs';

const clients = [];
function client(gw, opts = {}) {
  const c = new AivoClient(typeof gw === 'string' ? gw : gw.url('/ws'), {
    WebSocket, token: mintToken({ sub: opts.sub || 'alice' }), initialDelayMs: 100, maxDelayMs: 500, ...opts,
  });
  clients.push(c);
  return c;
}
const gateways = [];
async function gateway(opts) {
  const g = await startGateway(opts);
  gateways.push(g);
  return g;
}
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(gateways.map((g) => g.stop()));
});

test('emit resolves with the ack data and rejects with the gateway error code', async () => {
  const gw = await gateway({ policy: KIT_POLICY });
  const c = client(gw).connect();
  await waitFor(() => c.ready, 'ready');
  assert.deepEqual(await c.emit('echo', { n: 1, s: 'x' }), { n: 1, s: 'x' });
  await assert.rejects(c.emit('no-such-event', 1), (e) => e instanceof AivoError && e.code === 'unknown_event');
  await assert.rejects(c.emit('room:send', { room: 'r', msg: 1 }), (e) => e.code === 'not_in_room');
  // rooms: join, a message from another member arrives as an event
  assert.deepEqual(await c.join('r'), { ok: true, room: 'r' });
  assert.deepEqual(c.rooms, ['r']);
  const other = await connect(gw, { claims: { sub: 'bob' } });
  await other.request('join', { room: 'r' });
  const got = nextEvent(c, 'room:message');
  await other.request('room:send', { room: 'r', msg: 'hello' });
  const [data] = await got;
  assert.deepEqual(data, { room: 'r', from: 'bob', msg: 'hello' });
  await other.close();
  // not connected: a clear error, not a hang
  c.close();
  await assert.rejects(c.emit('echo', 1), (e) => e.code === 'disconnected');
});

test('emit rejects with timeout when no ack comes in time, and a late ack is ignored', async () => {
  const gw = await gateway({ policy: KIT_POLICY, set: ['lua.instruction_budget=0'] });
  const c = client(gw).connect();
  await waitFor(() => c.ready, 'ready');
  await assert.rejects(c.emit('flaky', { key: 't', slow: 1, delayMs: 800 }, { timeoutMs: 200 }),
    (e) => e.code === 'timeout');
  // the late ack of try 1 arrives and settles nothing; try 2 is acked at once
  assert.deepEqual(await c.emit('flaky', { key: 't' }), { key: 't', try: 2 });
});

test('resume: after a short disconnect the missed room messages arrive once, in order, and recovered is true', async () => {
  const gw = await gateway({ policy: KIT_POLICY });
  // the reconnect waits for its token: the test decides when the client comes back
  const token = mintToken({ sub: 'rita' });
  let gate = Promise.resolve();
  let release = () => {};
  const c = client(gw, { sub: 'rita', getToken: async () => { await gate; return token; } }).connect();
  await waitFor(() => c.ready, 'ready');
  await c.join('kept-1');
  const got = [];
  c.on('room:message', (d) => got.push(d.msg));
  const other = await connect(gw, { claims: { sub: 'sam' } });
  await other.request('join', { room: 'kept-1' });
  await other.request('room:send', { room: 'kept-1', msg: 'live-0' });
  await waitFor(() => got.length === 1, 'the live message');
  assert.equal(c.getOffsets()['kept-1'].offset, 1);
  const recovered = nextEvent(c, 'client:recovered', 30000);
  const closed = nextEvent(c, 'client:close', 15000);
  gate = new Promise((resolve) => { release = resolve; });
  c._ws.close(4000, 'test: the network drops'); // the client reconnects on its own
  await closed;
  for (let i = 1; i <= 5; i++) await other.request('room:send', { room: 'kept-1', msg: `away-${i}` });
  release();
  const [info] = await recovered;
  assert.equal(info.recovered, true, JSON.stringify(info));
  assert.equal(info.streams['kept-1'].replayed, 5);
  await waitFor(() => c.ready, 'ready again');
  await other.request('room:send', { room: 'kept-1', msg: 'live-6' });
  await waitFor(() => got.length === 7, `7 messages (got ${got})`);
  assert.deepEqual(got, ['live-0', 'away-1', 'away-2', 'away-3', 'away-4', 'away-5', 'live-6']);
  assert.deepEqual(c.getOffsets()['kept-1'].offset, 7);
  await other.close();
});

test('resume: a message needing an ack is acknowledged by the client and not sent again', async () => {
  const gw = await gateway({ policy: KIT_POLICY });
  const c = client(gw, { sub: 'tess' }).connect();
  await waitFor(() => c.ready, 'ready');
  const invoices = [];
  c.on('invoice', (d, frame) => invoices.push(frame));
  const other = await connect(gw, { claims: { sub: 'uma' } });
  await other.request('bill', { to: 'tess', n: 1 });
  await waitFor(() => invoices.length === 1, 'the invoice');
  assert.equal(invoices[0].ackRequired, true);
  assert.equal(invoices[0].channel, 'user:tess');
  await delay(1200); // past the 0.3 s ack timeout and two re-sends, had it not been acked
  assert.equal(invoices.length, 1, 'acknowledged: no re-send reached the app');
  const m = await (await fetch(`http://127.0.0.1:${gw.port}/metrics/prometheus`)).text();
  assert.match(m, /aivo_replay_acked_total 1/);
  assert.match(m, /aivo_replay_redelivered_total 0/);
  await other.close();
});

test('reconnects after the gateway restarts, rejoins its rooms and reports recovered: false', async () => {
  let gw = await gateway({ policy: KIT_POLICY });
  const port = gw.port;
  const c = client(gw).connect();
  const states = [];
  c.on('client:state', (s) => states.push(s));
  await waitFor(() => c.ready, 'ready');
  await c.join('room-a');
  const recovered = nextEvent(c, 'client:recovered', 30000);
  await gw.stop();
  await waitFor(() => c.state === 'reconnecting', 'reconnecting');
  assert.equal(c.ready, false);
  await assert.rejects(c.emit('echo', 1), (e) => e.code === 'disconnected');
  await delay(300); // a few refused attempts while it is down
  gw = await gateway({ policy: KIT_POLICY, listen: `127.0.0.1:${port}` });
  await waitFor(() => c.ready, 'ready again', 30000);
  const [info] = await recovered;
  assert.equal(info.recovered, false);
  assert.ok(states.includes('reconnecting') && states.includes('connecting'), states.join(','));
  // the room was joined again: a member's message reaches the client
  const other = await connect(gw, { claims: { sub: 'carol' } });
  await other.request('join', { room: 'room-a' });
  const got = nextEvent(c, 'room:message');
  await other.request('room:send', { room: 'room-a', msg: 'after restart' });
  assert.equal((await got)[0].msg, 'after restart');
  await other.close();
});

test('backoff is capped exponential with full jitter', () => {
  const o = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2 };
  assert.equal(backoffDelay(0, { ...o, jitter: false }), 100);
  assert.equal(backoffDelay(3, { ...o, jitter: false }), 800);
  assert.equal(backoffDelay(10, { ...o, jitter: false }), 1000);
  for (let a = 0; a < 12; a++) {
    const d = backoffDelay(a, o);
    assert.ok(d >= 0 && d <= Math.min(1000, 100 * 2 ** a), `attempt ${a}: ${d}`);
  }
  assert.equal(backoffDelay(5, { ...o, random: () => 0.5 }), 500);
});

test('answers auth:refresh with a token from getToken and stays connected past the grace period', async () => {
  const gw = await gateway({ policy: KIT_POLICY, set: ['auth.leeway=0', 'auth.refresh_grace=2'] });
  const now = Math.floor(Date.now() / 1000);
  let asked = 0;
  const c = client(gw, {
    token: mintToken({ sub: 'dave', exp: now + 2 }),
    getToken: async () => { asked++; return mintToken({ sub: 'dave' }); },
  });
  const auth = nextEvent(c, 'client:auth', 20000);
  c.connect();
  await waitFor(() => c.ready, 'ready');
  const [res] = await auth;
  assert.equal(res.ok, true, JSON.stringify(res));
  assert.ok(res.exp > now + 60);
  assert.equal(asked, 1);
  const closes = [];
  c.on('client:close', (i) => closes.push(i));
  await delay(3500); // past exp + grace: without the refresh it is closed with 4401
  assert.deepEqual(closes, []);
  assert.equal(await c.emit('echo', 'still here'), 'still here');
});

test('without a refresher an expired token ends with 4401 and no reconnect loop', async () => {
  const gw = await gateway({ policy: KIT_POLICY, set: ['auth.leeway=0', 'auth.refresh_grace=1'] });
  const now = Math.floor(Date.now() / 1000);
  const c = client(gw, { token: mintToken({ sub: 'erin', exp: now + 1 }) });
  const closed = nextEvent(c, 'client:close', 20000);
  c.connect();
  const [info] = await closed;
  assert.equal(info.code, 4401);
  await delay(300);
  assert.equal(c.state, 'closed');
});

test('quality: the gateway class, then offline when the gateway is gone', async () => {
  const gw = await gateway({ policy: KIT_POLICY, set: ['quality.check_interval=0.5'] });
  const c = client(gw);
  const q = new ConnectionQuality(clientQualitySource(c), { probeIntervalMs: 0 });
  assert.equal(q.getSnapshot().quality, 'offline');
  c.connect();
  const snap = await waitFor(() => (q.getSnapshot().quality === 'excellent' ? q.getSnapshot() : null), 'excellent');
  assert.equal(typeof snap.latency, 'number');
  assert.equal(snap.server, 'excellent');
  assert.equal(snap.reason, 'gateway');
  await gw.stop();
  await waitFor(() => q.getSnapshot().quality === 'offline', 'offline');
  q.destroy();
});

test('quality: a quiet connection is probed, and silence past staleAfterMs is poor', async () => {
  const gw = await gateway({ policy: KIT_POLICY, set: ['quality.check_interval=0'] });
  const c = client(gw);
  const q = new ConnectionQuality(clientQualitySource(c), { probeIntervalMs: 300, tickMs: 100, staleAfterMs: 60000 });
  c.connect();
  await waitFor(() => c.ready, 'ready');
  // measurement off: no event ever comes, but the probe's ack carries the report
  await waitFor(() => q.getSnapshot().server === 'unknown', 'a probe answered', 10000);
  q.destroy();
  // stale rule: nothing received for longer than staleAfterMs
  const q2 = new ConnectionQuality(clientQualitySource(c), { probeIntervalMs: 0, tickMs: 50, staleAfterMs: 200 });
  await waitFor(() => q2.getSnapshot().quality === 'poor' && q2.getSnapshot().reason === 'stale', 'stale', 5000);
  q2.destroy();
});
