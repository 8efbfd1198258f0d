'use strict';
// Socket.IO v4 clients against the default policy, unchanged: the real socket.io-client
// (io(url, { auth: { token, learnerId } })), over websocket only, over the default transports
// (long-polling, then the upgrade), and over polling only. Acks, events, several arguments,
// nested binary payloads, the rate-limit refusal shape and the auth path.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway } = require('./lib/gateway');
const crypto = require('node:crypto');
const { SECRET, mintToken, client, connect, connectError, once, ack, closeAll } = require('./lib/sio');

let gw;
const ENV = { JWT_SECRET: SECRET };

before(async () => {
  gw = await startGateway({ env: ENV, set: ['ratelimit.per_minute=0'] });
});

after(async () => {
  await closeAll();
  if (gw) await gw.stop('SIGKILL');
});

const auth = (sub = 'learner-1', extra = {}) => ({ token: mintToken({ sub }), ...extra });

test('websocket only: connects, acks, and the socket id is the one the server gave', async () => {
  const s = await connect(gw, '/', { transports: ['websocket'], auth: auth() });
  assert.equal(s.io.engine.transport.name, 'websocket');
  assert.match(s.id, /^[A-Za-z0-9_-]{20}$/);
  const [res] = await ack(s, 'echo', { hello: 'world', n: 1.5, list: [1, 'two', null], empty: [] });
  assert.deepEqual(res, { hello: 'world', n: 1.5, list: [1, 'two', null], empty: [] });
  // the old service's event: an agent session through the agent plugin
  const [started] = await ack(s, 'agent:learning', { action: 'start_session' });
  assert.equal(started.ok, true);
  assert.equal(typeof started.sessionId, 'string');
  s.disconnect();
});

test('default transports: long-polling first, then the upgrade to websocket; nothing lost', async () => {
  const s = client(gw, '/', { auth: auth() });
  const seen = { first: null, upgradedTo: null };
  s.io.on('open', () => {
    const engine = s.io.engine;
    seen.first = engine.transport.name;
    engine.on('upgrade', (t) => { seen.upgradedTo = t.name; });
  });
  // emitted before the connection exists: sent while polling or while the upgrade runs,
  // and each gets its own ack
  const early = Array.from({ length: 60 }, (_, i) => ack(s, 'echo', { i }));
  await once(s, 'connect');
  const acks = await Promise.all(early);
  acks.forEach(([res], i) => assert.deepEqual(res, { i }));
  if (!seen.upgradedTo) await once(s.io.engine, 'upgrade');
  assert.equal(seen.first, 'polling', 'a default client starts with long-polling');
  assert.equal(s.io.engine.transport.name, 'websocket', 'then upgrades to websocket');
  const [res] = await ack(s, 'echo', 'after the upgrade');
  assert.equal(res, 'after the upgrade');
  s.disconnect();
});

test('polling only: acks and server events over HTTP long-polling', async () => {
  const s = await connect(gw, '/', { transports: ['polling'], auth: auth() });
  assert.equal(s.io.engine.transport.name, 'polling');
  const [res] = await ack(s, 'echo', 'héllo 🌍');
  assert.equal(res, 'héllo 🌍');
  const got = once(s, 'echo');
  s.emit('echo', { pushed: true });
  assert.deepEqual((await got)[0], { pushed: true });
  s.disconnect();
});

for (const transports of [['websocket'], ['polling']]) {
  test(`${transports[0]}: many concurrent acks, each matched to its own request`, async () => {
    const s = await connect(gw, '/', { transports, auth: auth() });
    const n = transports[0] === 'websocket' ? 1000 : 300;
    const payloads = Array.from({ length: n }, (_, i) => ({ i, tag: `m${i}`, sq: i * i }));
    const results = await Promise.all(payloads.map((p) => ack(s, 'echo', p)));
    results.forEach(([res], i) => assert.deepEqual(res, payloads[i]));
    s.disconnect();
  });

  test(`${transports[0]}: nested binary payloads of 3 B, 1 KiB and 64 KiB in acks and events`, async () => {
    const s = await connect(gw, '/', { transports, auth: auth() });
    const small = Buffer.from([1, 2, 3]);
    const kib = crypto.randomBytes(1024);
    const big = crypto.randomBytes(65536);
    const payload = { small, nested: { kib, list: [big, 'text', 7] }, name: 'files' };
    const check = (got, what) => {
      assert.ok(Buffer.isBuffer(got.small), `${what}: small is a Buffer`);
      assert.ok(got.small.equals(small), `${what}: 3 B intact`);
      assert.ok(Buffer.from(got.nested.kib).equals(kib), `${what}: 1 KiB intact`);
      assert.ok(Buffer.from(got.nested.list[0]).equals(big), `${what}: 64 KiB intact`);
      assert.deepEqual(got.nested.list.slice(1), ['text', 7]);
      assert.equal(got.name, 'files');
    };
    const [res] = await ack(s, 'echo', payload);
    check(res, 'ack');
    const got = once(s, 'echo');
    s.emit('echo', payload); // no ack: the echo plugin sends it back as an event
    check((await got)[0], 'event');
    // a top-level Buffer too
    const [raw] = await ack(s, 'echo', big);
    assert.ok(Buffer.from(raw).equals(big));
    s.disconnect();
  });
}

test('several arguments: an event with three arguments is acked with the same three', async () => {
  const s = await connect(gw, '/', { transports: ['websocket'], auth: auth() });
  const res = await ack(s, 'echo', 1, 'two', { three: [3] });
  assert.deepEqual(res, [1, 'two', { three: [3] }]);
  const none = await ack(s, 'echo');
  assert.deepEqual(none, []);
  s.disconnect();
});

test('refusals: an unknown event is acked {ok:false, error}; without an ack it is an error event', async () => {
  const s = await connect(gw, '/', { transports: ['websocket'], auth: auth() });
  const [res] = await ack(s, 'no-such-event', {});
  assert.equal(res.ok, false);
  assert.equal(res.error.code, 'unknown_event');
  const err = once(s, 'error');
  s.emit('no-such-event');
  assert.equal((await err)[0].code, 'unknown_event');
  s.disconnect();
});

test('auth: the token and learnerId of the auth payload reach the policy', async () => {
  // the default policy refuses a learnerId that is not the token's own
  const err = await connectError(gw, '/', {
    transports: ['websocket'], auth: auth('learner-1', { learnerId: 'someone-else' }),
  });
  assert.equal(err.message, 'unauthorized');
  assert.deepEqual(err.data, { reason: 'learner_mismatch' });
  // the matching learnerId connects, and the identity is the token's subject
  const s = await connect(gw, '/', { transports: ['websocket'], auth: auth('learner-7', { learnerId: 'learner-7' }) });
  const [started] = await ack(s, 'agent:learning', { action: 'start_session' });
  assert.equal(started.ok, true);
  s.disconnect();
});

test('auth: no token, a bad signature and an expired token get CONNECT_ERROR unauthorized', async () => {
  for (const [opts, reason] of [
    [{}, 'token_missing'],
    [{ auth: { token: mintToken({ sub: 'x' }, 'another-secret-0123456789abcdef') } }, 'bad_signature'],
    [{ auth: { token: mintToken({ sub: 'x', exp: Math.floor(Date.now() / 1000) - 3600 }) } }, 'token_expired'],
  ]) {
    for (const transports of [['websocket'], ['polling']]) {
      const err = await connectError(gw, '/', { transports, ...opts });
      assert.equal(err.message, 'unauthorized', `${reason} over ${transports[0]}`);
      assert.deepEqual(err.data, { reason }, `${reason} over ${transports[0]}`);
    }
  }
});

test('rate limit: a refused message is acked {rateLimited: true, retryAfterMs}', async () => {
  const limited = await startGateway({ env: ENV, set: ['ratelimit.per_minute=3'] });
  try {
    const s = await connect(limited, '/', { transports: ['websocket'], auth: auth() });
    for (let i = 0; i < 3; i++) assert.equal((await ack(s, 'echo', i))[0], i);
    const [res] = await ack(s, 'agent:learning', { action: 'start_session' });
    assert.equal(res.rateLimited, true);
    assert.ok(res.retryAfterMs > 0 && res.retryAfterMs <= 60000, `retryAfterMs ${res.retryAfterMs}`);
    // without an ack: the error event, with the same code
    const err = once(s, 'error');
    s.emit('echo', 'x');
    const [e] = await err;
    assert.equal(e.code, 'rate_limited');
    assert.ok(e.retryAfterMs > 0);
    s.disconnect();
  } finally {
    await limited.stop('SIGKILL');
  }
});
