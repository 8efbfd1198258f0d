'use strict';
// The admin API's lists: GET /admin/connections (totals, and a page of
// connections with id, user, protocol, remote address, rooms, connected since and
// quality) and GET /admin/rooms (per-room member counts), both paged with
// limit/cursor so that every item appears exactly once.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startGateway, clientPool, delay } = require('./lib/gateway');

let gw;
let adminPort;
const pool = clientPool();
const tag = crypto.randomBytes(3).toString('hex');
const users = [1, 2, 3, 4, 5].map((i) => `ops-${tag}-${i}`);
const ROOMS = { red: [0, 1, 2], 'blue "room"\n': [2, 3, 4] }; // a name that needs escaping
let clients = [];
let t0;

async function admin(p) {
  const res = await fetch(`http://127.0.0.1:${adminPort}${p}`);
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

async function pages(endpoint, limit) {
  const all = [];
  let cursor = null;
  let n = 0;
  do {
    const q = `${endpoint}?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const r = await admin(q);
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.items.length <= limit, r.text);
    all.push(...r.json.items);
    cursor = r.json.next_cursor;
    assert.ok(++n < 50, 'paging does not end');
  } while (cursor);
  return { items: all, pages: n };
}

before(async () => {
  gw = await startGateway({ args: ['--admin-listen', '127.0.0.1:0'] });
  const start = Date.now();
  let m;
  while (!(m = /admin API on 127\.0\.0\.1:(\d+)/.exec(gw.logs())) && Date.now() - start < 5000) await delay(50);
  assert.ok(m, gw.logs());
  adminPort = Number(m[1]);
  t0 = Date.now();
  clients = [];
  for (const sub of users) clients.push(await pool.connect(gw, { claims: { sub } }));
  for (const [room, members] of Object.entries(ROOMS)) {
    for (const i of members) assert.equal((await clients[i].request('join', { room })).error, undefined);
  }
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGTERM');
});

test('connections: totals kept, and paging with limit=2 lists each connection once with its fields', async () => {
  const first = await admin('/admin/connections?limit=2');
  assert.equal(first.json.connections, 5);
  assert.deepEqual(first.json.by_protocol, { ws: 5, socketio: 0 });
  assert.equal(first.json.rooms, 7); // red, blue, and one user:<id> room per identity
  const { items, pages: n } = await pages('/admin/connections', 2);
  assert.equal(n, 3);
  assert.equal(items.length, 5);
  const ids = items.map((c) => c.id);
  assert.deepEqual([...new Set(ids)], ids, 'no connection twice');
  assert.deepEqual([...ids].sort((a, b) => a - b), ids, 'in id order');
  assert.deepEqual(items.map((c) => c.user).sort(), [...users].sort());
  const now = Date.now();
  for (const c of items) {
    const i = users.indexOf(c.user);
    assert.equal(c.protocol, 'ws');
    assert.equal(c.remote, '127.0.0.1');
    const want = [`user:${c.user}`, ...Object.keys(ROOMS).filter((r) => ROOMS[r].includes(i))];
    assert.deepEqual([...c.rooms].sort(), want.sort(), JSON.stringify(c));
    assert.equal(Date.parse(c.connected_at), c.connected_at_ms, c.connected_at);
    assert.ok(c.connected_at_ms >= t0 - 50 && c.connected_at_ms <= now + 50, JSON.stringify(c));
    assert.deepEqual(Object.keys(c.quality), ['class', 'rtt_ms', 'latency_ms']);
    assert.ok(['unknown', 'excellent', 'good', 'fair', 'poor'].includes(c.quality.class), JSON.stringify(c));
    if (c.quality.class !== 'unknown') assert.ok(c.quality.rtt_ms >= 0 && c.quality.rtt_ms < 1000, JSON.stringify(c));
  }
  // one page of everything: no cursor to follow
  const all = await admin('/admin/connections?limit=1000');
  assert.equal(all.json.items.length, 5);
  assert.equal(all.json.next_cursor, null);
});

test('rooms: per-room member counts, paged by name with limit=2', async () => {
  const { items, pages: n } = await pages('/admin/rooms', 2);
  assert.equal(n, 4); // 7 rooms
  const names = items.map((r) => r.name);
  assert.deepEqual([...new Set(names)], names, 'no room twice');
  const counts = Object.fromEntries(items.map((r) => [r.name, r.members]));
  const want = { red: 3, 'blue "room"\n': 3 };
  for (const u of users) want[`user:${u}`] = 1;
  assert.deepEqual(counts, want);
  assert.equal((await admin('/admin/rooms')).json.rooms, 7);
});

test('a cursor whose connection has gone still continues after it', async () => {
  const p1 = await admin('/admin/connections?limit=2');
  const cursor = p1.json.next_cursor;
  const gone = p1.json.items[1];
  assert.equal(cursor, String(gone.id));
  await clients[users.indexOf(gone.user)].close();
  const t = Date.now();
  while ((await admin('/admin/connections?limit=1')).json.connections !== 4 && Date.now() - t < 3000) await delay(20);
  const p2 = await admin(`/admin/connections?limit=10&cursor=${cursor}`);
  assert.equal(p2.json.items.length, 3);
  assert.ok(p2.json.items.every((c) => c.id > gone.id));
  assert.equal(p2.json.next_cursor, null);
});

test('bad paging arguments are 400 with a reason', async () => {
  for (const q of ['/admin/connections?limit=0', '/admin/connections?limit=1001', '/admin/connections?limit=x',
    '/admin/connections?cursor=abc', '/admin/rooms?limit=-1', '/admin/rooms?cursor=zz', '/admin/rooms?cursor=abc']) {
    const r = await admin(q);
    assert.equal(r.status, 400, q);
    assert.equal(r.json.error.code, 'bad_request', q);
  }
  const r = await fetch(`http://127.0.0.1:${adminPort}/admin/rooms`, { method: 'POST', body: '{}' });
  assert.equal(r.status, 405);
});

test('a Socket.IO connection is listed with protocol socketio and its identity', async () => {
  const { client, once, closeAll } = require('./lib/sio');
  const { mintToken } = require('./lib/gateway');
  const s = client(gw, '/', { transports: ['websocket'], auth: { token: mintToken({ sub: `sio-${tag}` }) } });
  try {
    await once(s, 'connect');
    const r = await admin('/admin/connections?limit=1000');
    assert.equal(r.json.by_protocol.socketio, 1);
    const item = r.json.items.find((c) => c.protocol === 'socketio');
    assert.ok(item, r.text);
    assert.equal(item.user, `sio-${tag}`);
    assert.equal(item.remote, '127.0.0.1');
    assert.deepEqual(item.rooms, [`user:sio-${tag}`]);
  } finally {
    s.disconnect();
    await closeAll();
  }
});
