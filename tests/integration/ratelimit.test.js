'use strict';
// Rate limits through the native protocol (docs/ratelimit.md): the default
// policy's 100 messages per minute per connection (a burst of 150: exactly 100
// handled, 50 refused, with acks and without), the refusal shapes, the metrics,
// ratelimit.per_minute=0, closing abusers with 4429, two rules on one message,
// a per-event rule, a reload (SIGHUP) that keeps the buckets, a malformed rule,
// and the connection limits per address (several 127.0.0.x sources) and per
// identity.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { startGateway, clientPool, delay, TEST_POLICIES } = require('./lib/gateway');
const { ENV, ARGS, wsOpts, metrics, upgrade, waitForLog } = require('./lib/traffic');

const RULES = path.join(TEST_POLICIES, 'ratelimit_rules.lua');
const gateways = [];
const pool = clientPool();

async function gateway(opts = {}) {
  const gw = await startGateway({ env: ENV, args: ARGS, ...opts });
  gateways.push(gw);
  return gw;
}

// A graceful stop must exit 0: under an ASan build a leak would fail it here.
after(async () => {
  await pool.closeAll();
  for (const gw of gateways) {
    const r = await gw.stop('SIGTERM');
    assert.equal(r.code, 0, `gateway exit ${JSON.stringify(r)}\n${gw.logs().slice(-3000)}`);
  }
});

// Sends n requests at once (each with an ack id) and waits for every ack.
async function burstAcked(client, n, event = 'echo') {
  const acks = await Promise.all(Array.from({ length: n }, (_, i) => client.request(event, i)));
  return {
    ok: acks.filter((a) => !a.error),
    refused: acks.filter((a) => a.error),
  };
}

test('default policy: a burst of 150 acked messages: exactly 100 handled, 50 refused', async () => {
  const gw = await gateway();
  const c = await pool.connect(gw, { wsOptions: wsOpts('burst-acked') });
  const before = await metrics(gw.port);
  const { ok, refused } = await burstAcked(c, 150);
  assert.equal(ok.length, 100);
  assert.equal(refused.length, 50);
  // the first 100 are the ones handled (one connection keeps its order)
  assert.deepEqual(ok.map((a) => a.data), Array.from({ length: 100 }, (_, i) => i));
  for (const a of refused) {
    assert.equal(a.error.code, 'rate_limited');
    assert.equal(typeof a.error.message, 'string');
    assert.ok(Number.isInteger(a.error.retryAfterMs), JSON.stringify(a));
    assert.ok(a.error.retryAfterMs > 0 && a.error.retryAfterMs <= 600, JSON.stringify(a));
    assert.deepEqual(Object.keys(a.error).sort(), ['code', 'message', 'retryAfterMs']);
  }
  const m = await metrics(gw.port);
  if (m.size) {
    assert.equal(m.get('websocket_rate_limited_total') - (before.get('websocket_rate_limited_total') || 0), 50);
    assert.equal(m.get('aivo_rate_limited_total{rule="per_connection"}'), 50);
  }
  // the connection stays open, and after the advertised wait one more passes
  await delay(refused[refused.length - 1].error.retryAfterMs + 50);
  assert.equal((await c.request('echo', 'again')).data, 'again');
  const next = await c.request('echo', 'too soon');
  assert.equal(next.error && next.error.code, 'rate_limited');
});

test('default policy: without acks, 100 echo events and 50 error events', async () => {
  const gw = await gateway();
  const c = await pool.connect(gw, { wsOptions: wsOpts('burst-events') });
  for (let i = 0; i < 150; i++) c.send('echo', i);
  const t0 = Date.now();
  // (a new connection also gets its connection:quality report: not counted)
  while (c.events('echo').length + c.events('error').length < 150 && Date.now() - t0 < 10000) await delay(20);
  const echoes = c.events('echo');
  const errors = c.events('error');
  assert.equal(echoes.length, 100);
  assert.equal(errors.length, 50);
  assert.deepEqual(echoes.map((e) => e.data), Array.from({ length: 100 }, (_, i) => i));
  for (const e of errors) {
    assert.equal(e.data.code, 'rate_limited');
    assert.ok(e.data.retryAfterMs > 0 && e.data.retryAfterMs <= 600);
  }
});

test('ratelimit.per_minute=0 turns the limit off; =N sets it', async () => {
  const off = await gateway({ set: ['ratelimit.per_minute=0'] });
  const a = await pool.connect(off, { wsOptions: wsOpts('unlimited') });
  const r = await burstAcked(a, 300);
  assert.equal(r.ok.length, 300);
  assert.equal(r.refused.length, 0);
  const ten = await gateway({ set: ['ratelimit.per_minute=10'] });
  const b = await pool.connect(ten, { wsOptions: wsOpts('ten') });
  const s = await burstAcked(b, 20);
  assert.equal(s.ok.length, 10);
  assert.equal(s.refused[0].error.retryAfterMs > 5000, true); // one per 6 s
});

test('a client that keeps sending through its refusals is closed with 4429', async () => {
  const gw = await gateway({ set: ['ratelimit.close_after=5'] });
  const c = await pool.connect(gw, { wsOptions: wsOpts('abuser') });
  const other = await pool.connect(gw, { wsOptions: wsOpts('bystander') });
  for (let i = 0; i < 110; i++) c.send('echo', i);
  const closed = await c.waitClose();
  assert.deepEqual(closed, { code: 4429, reason: 'rate limited' });
  assert.equal(c.events('echo').length, 100);
  assert.equal(c.events('error').length, 4); // the 5th refusal closes instead
  assert.equal((await other.request('echo', 'fine')).data, 'fine');
  assert.match(gw.logs(), /5 messages refused in a row/);
});

// lws calls WRITEABLE again while its close frame waits to go out; a second close from the
// gateway there killed the socket without the frame, and the client saw 1006 instead of
// 4429 (about 2 % of closes at info level, 45 % with debug logging slowing the loop). And
// with Nagle on (lws sets TCP_NODELAY only on sockets it accepts itself), the close frame
// after the last replies waited for the client's delayed ACK: 46 ms per close instead of 2.
test('the 4429 close frame always arrives, at once: 300 abusers in a row', async () => {
  const gw = await gateway({ set: ['ratelimit.close_after=5'], args: [...ARGS, '--log-level', 'debug'] });
  const codes = [];
  const waits = [];
  for (let i = 0; i < 300; i++) {
    const c = await pool.connect(gw, { wsOptions: wsOpts(`abuser-${i}`) });
    for (let k = 0; k < 110; k++) c.send('echo', k);
    const t0 = process.hrtime.bigint();
    codes.push((await c.waitClose()).code);
    waits.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  assert.deepEqual(codes, Array(300).fill(4429));
  // the median, not each one: a busy machine delays a few, Nagle delayed every one by the
  // peer's delayed-ACK timer (40 ms on Linux)
  waits.sort((a, b) => a - b);
  assert.ok(waits[150] < 30, `median close took ${waits[150].toFixed(1)} ms`);
});

test('two rules on one message: per connection and per user; a refusal charges neither', async () => {
  const gw = await gateway({ policy: RULES });
  const a = await pool.connect(gw, { path: '/ws?user=bob', wsOptions: wsOpts('bob') });
  const b = await pool.connect(gw, { path: '/ws?user=bob', wsOptions: wsOpts('bob') });
  const ra = await burstAcked(a, 7);
  assert.equal(ra.ok.length, 5); // per_connection: 5
  // the limited hook saw both refusals (its events come before the refusal acks)
  assert.deepEqual(a.events('limited').map((e) => [e.data.rule, e.data.refused]),
    [['per_connection', 1], ['per_connection', 2]]);
  const rb = await burstAcked(b, 7);
  assert.equal(rb.ok.length, 3); // per_user: 8 in all, a's refusals took nothing
  const limitedB = await b.next('limited');
  assert.equal(limitedB.data.rule, 'per_user');
  assert.equal(limitedB.data.refused, 1);
  // another user is not affected
  const c = await pool.connect(gw, { path: '/ws?user=carol', wsOptions: wsOpts('carol') });
  assert.equal((await burstAcked(c, 5)).ok.length, 5);
  const m = await metrics(gw.port);
  if (m.size) {
    assert.equal(m.get('aivo_rate_limited_total{rule="per_user"}'), 4);
    assert.equal(m.get('aivo_rate_limited_total{rule="per_connection"}'), 2);
  }
});

test('a per-event rule: 2 typing messages per second per user, refilled', async () => {
  const gw = await gateway({ policy: RULES });
  const a = await pool.connect(gw, { path: '/ws?user=tina', wsOptions: wsOpts('tina') });
  const r = await burstAcked(a, 4, 'typing');
  assert.equal(r.ok.length, 2);
  assert.ok(r.refused.every((x) => x.error.retryAfterMs > 0 && x.error.retryAfterMs <= 500));
  await delay(550);
  assert.equal((await burstAcked(a, 4, 'typing')).ok.length, 1);
});

test('a malformed rule fails the message closed (internal_error) and names the field in the log', async () => {
  const gw = await gateway({ policy: RULES });
  const a = await pool.connect(gw, { path: '/ws?user=x', wsOptions: wsOpts('x') });
  const ack = await a.request('bad');
  assert.equal(ack.error.code, 'internal_error');
  await waitForLog(gw, /rate limit rule 1: unknown field 'colour'/);
  assert.equal((await a.request('echo', 1)).data, 1);
});

test('a policy reload (SIGHUP) does not reset the buckets', async () => {
  const gw = await gateway();
  const c = await pool.connect(gw, { wsOptions: wsOpts('reloader') });
  assert.equal((await burstAcked(c, 60)).ok.length, 60);
  const mark = gw.logs().length;
  gw.proc.kill('SIGHUP');
  await waitForLog(gw, /policy reloaded \(SIGHUP\)/, mark);
  const after = await burstAcked(c, 60);
  assert.equal(after.ok.length, 40);
  assert.equal(after.refused.length, 20);
});

test('connections per address: the cap refuses with HTTP 429 from that address only', async () => {
  const gw = await gateway({ set: ['connections.max_per_ip=2'] });
  const url = gw.url('/ws');
  const from = (ip, sub = 'cap') => wsOpts(sub, { localAddress: ip });
  const x1 = await pool.connect(gw, { wsOptions: from('127.0.0.2') });
  await pool.connect(gw, { wsOptions: from('127.0.0.2') });
  const refused = await upgrade(url, from('127.0.0.2'));
  assert.equal(refused.status, 429);
  assert.equal(JSON.parse(refused.body).error, 'rate_limited');
  assert.equal(JSON.parse(refused.body).reason, 'too many connections from this address');
  // another source address is not affected
  const y = await upgrade(url, from('127.0.0.3'));
  assert.ok(y.open, `127.0.0.3 was refused: ${y.status}`);
  y.open.close();
  // one closes: the address may connect again
  await x1.close();
  await delay(100);
  const again = await upgrade(url, from('127.0.0.2'));
  assert.ok(again.open, `127.0.0.2 still refused: ${again.status}`);
  again.open.close();
  const m = await metrics(gw.port);
  if (m.size) assert.equal(m.get('aivo_connections_refused_total{reason="ip_concurrent"}'), 1);
});

test('new connections per address per second: HTTP 429 with Retry-After, then allowed again', async () => {
  const gw = await gateway({ set: ['connections.per_ip_per_second=3'] });
  const url = gw.url('/ws');
  const opts = (ip) => wsOpts('rate', { localAddress: ip });
  for (let i = 0; i < 3; i++) {
    const r = await upgrade(url, opts('127.0.0.4'));
    assert.ok(r.open, `connection ${i + 1} refused: ${r.status}`);
    r.open.close();
  }
  const refused = await upgrade(url, opts('127.0.0.4'));
  assert.equal(refused.status, 429);
  assert.equal(refused.headers['retry-after'], '1');
  const body = JSON.parse(refused.body);
  assert.equal(body.reason, 'too many new connections from this address');
  assert.ok(body.retryAfterMs > 0 && body.retryAfterMs <= 334, refused.body);
  const other = await upgrade(url, opts('127.0.0.5'));
  assert.ok(other.open);
  other.open.close();
  await delay(400); // one new connection per 333 ms
  const later = await upgrade(url, opts('127.0.0.4'));
  assert.ok(later.open, `still refused after the wait: ${later.status}`);
  later.open.close();
});

test('connections per identity: the one over the cap is refused with HTTP 429', async () => {
  const gw = await gateway({ policy: RULES, set: ['connections.max_per_user=2'] });
  const opts = { path: '/ws?user=dana', wsOptions: wsOpts('dana') };
  const a = await pool.connect(gw, opts);
  await pool.connect(gw, opts);
  const third = await upgrade(gw.url('/ws?user=dana'), wsOpts('dana'));
  assert.equal(third.status, 429);
  assert.deepEqual(JSON.parse(third.body), { error: 'rate_limited', reason: 'too many connections for this identity' });
  const eve = await pool.connect(gw, { path: '/ws?user=eve', wsOptions: wsOpts('eve') });
  assert.equal((await eve.request('echo', 'e')).data, 'e');
  await a.close();
  await delay(100);
  const again = await pool.connect(gw, opts);
  assert.equal((await again.request('echo', 'back')).data, 'back');
  const m = await metrics(gw.port);
  if (m.size) assert.equal(m.get('aivo_connections_refused_total{reason="user_concurrent"}'), 1);
});

test('connection limits are off by default', async () => {
  const gw = await gateway();
  const url = gw.url('/ws');
  const open = [];
  for (let i = 0; i < 12; i++) {
    const r = await upgrade(url, wsOpts('many', { localAddress: '127.0.0.6' }));
    assert.ok(r.open, `refused: ${r.status}`);
    open.push(r.open);
  }
  for (const ws of open) ws.close();
});
