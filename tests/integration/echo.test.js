'use strict';
// Echo plugin of the default policy over the native /ws protocol: acks carry
// the same payload, events come back as `echo`, binary stays binary, and
// concurrent acks are matched to their own ids.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, clientPool } = require('./lib/gateway');

let gw;
const pool = clientPool();

before(async () => {
  gw = await startGateway({ set: ['ratelimit.per_minute=0'] }); // bursts of hundreds of requests
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
});

const PAYLOADS = {
  string: 'hello',
  'empty string': '',
  integer: 42,
  zero: 0,
  negative: -17,
  float: 2.5,
  'ms timestamp': 1700000000123,
  true: true,
  false: false,
  null: null,
  array: [1, 'two', false, null, 3.25],
  'nested object': { a: { b: { c: [1, { d: 'deep' }] } }, list: ['x', { y: null }], n: -1, ok: true },
  unicode: 'héllo wörld — 日本語 — emoji 🌍🚀 — RTL שלום — \u0000-free \t tab "quoted" \\ backslash',
  'unicode keys': { 'clé': 'valeur', '键': '值', '🔑': '🚪' },
};

test('echo with an ack returns the same payload for every JSON type', async () => {
  const c = await pool.connect(gw);
  for (const [name, payload] of Object.entries(PAYLOADS)) {
    const ack = await c.request('echo', payload);
    assert.equal(ack.error, undefined, `${name}: unexpected error ${JSON.stringify(ack.error)}`);
    assert.ok('data' in ack, `${name}: ack has no data field: ${JSON.stringify(ack)}`);
    assert.deepEqual(ack.data, payload, `${name}: payload changed`);
  }
});

test('an empty array is echoed as an array, an empty object as an object', async () => {
  // Clients tell [] from {}: a list that happens to be empty must stay a list.
  // (Object key order is not kept: JSON objects are unordered.)
  const c = await pool.connect(gw);
  for (const v of [[], {}, { items: [], meta: {} }, [[], {}]]) {
    const ack = await c.request('echo', v);
    assert.deepStrictEqual(ack.data, v, `${JSON.stringify(v)} -> ${JSON.stringify(ack.data)}`);
  }
});

test('numbers keep full double precision', async () => {
  // Ids and amounts round-trip through JSON as doubles; echo must not shorten them.
  const c = await pool.connect(gw);
  const wrong = [];
  for (const v of [Number.MAX_SAFE_INTEGER, 0.1 + 0.2, 3.141592653589793, -123456789012345.6, 1e-7, 1234567890123456]) {
    const ack = await c.request('echo', v);
    if (ack.data !== v) wrong.push(`${v} -> ${JSON.stringify(ack.data)}`);
  }
  assert.deepEqual(wrong, []);
});

test('ack id 0 is a valid id', async () => {
  const c = await pool.connect(gw);
  await c.sendRaw(JSON.stringify({ event: 'echo', data: 'zero', id: 0 }));
  // The helper only tracks ids it issued (from 1), so ack 0 lands in the inbox.
  const ack = await c.nextMatching((f) => f.ack === 0, 'ack 0');
  assert.equal(ack.data, 'zero');
});

test('echo without an ack comes back as an echo event with the same data', async () => {
  const c = await pool.connect(gw);
  for (const [name, payload] of Object.entries(PAYLOADS)) {
    c.send('echo', payload);
    const ev = await c.next('echo');
    assert.ok('data' in ev, `${name}: echo event has no data field: ${JSON.stringify(ev)}`);
    assert.deepEqual(ev.data, payload, `${name}: payload changed`);
  }
  // No acks were asked for, so none may arrive.
  assert.equal(c.received.filter((f) => f && 'ack' in f).length, 0);
});

test('a binary frame is echoed back as a binary frame with the same bytes', async () => {
  const c = await pool.connect(gw);
  const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  await c.sendRaw(every, { binary: true });
  assert.deepEqual(await c.nextBinary(), every);

  // Larger than one TCP segment and containing NULs and invalid UTF-8.
  const big = Buffer.alloc(100000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
  await c.sendRaw(big, { binary: true });
  const back = await c.nextBinary();
  assert.equal(back.length, big.length);
  assert.ok(back.equals(big), 'large binary payload changed');

  // The connection still speaks JSON afterwards.
  const ack = await c.request('echo', 'after binary');
  assert.equal(ack.data, 'after binary');
});

test('many concurrent requests each get the ack for their own id', async () => {
  const c = await pool.connect(gw);
  const n = 300;
  const acks = await Promise.all(
    Array.from({ length: n }, (_, i) => c.request('echo', { i, tag: `req-${i}`, pad: 'x'.repeat(i % 50) })),
  );
  const ids = new Set();
  acks.forEach((ack, i) => {
    assert.equal(ack.error, undefined, `request ${i}: ${JSON.stringify(ack.error)}`);
    assert.deepEqual(ack.data, { i, tag: `req-${i}`, pad: 'x'.repeat(i % 50) });
    ids.add(ack.ack);
  });
  assert.equal(ids.size, n, 'every ack id is distinct');
  // Nothing unexpected besides the acks (and the link quality report of a new connection).
  assert.equal(c.received.filter((f) => f.event !== 'connection:quality').length, n);
});

test('two clients echoing at once only get their own answers', async () => {
  const [a, b] = await Promise.all([pool.connect(gw), pool.connect(gw)]);
  const n = 100;
  const [acksA, acksB] = await Promise.all([
    Promise.all(Array.from({ length: n }, (_, i) => a.request('echo', `a${i}`))),
    Promise.all(Array.from({ length: n }, (_, i) => b.request('echo', `b${i}`))),
  ]);
  acksA.forEach((ack, i) => assert.equal(ack.data, `a${i}`));
  acksB.forEach((ack, i) => assert.equal(ack.data, `b${i}`));
  const answers = (c) => c.received.filter((f) => f.event !== 'connection:quality');
  assert.equal(answers(a).length, n);
  assert.equal(answers(b).length, n);
});
