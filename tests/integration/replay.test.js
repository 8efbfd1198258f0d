'use strict';
// Offline replay for native /ws clients (issue 15, docs/offline-replay.md): a user away while
// 50 messages arrive on its user channel and a room resumes with its positions and gets all
// of them in order, then live ones, none twice (with a sender publishing during the
// reconnect); the same across two gateways on one real redis-server; a gateway SIGKILLed and
// a Redis restarted with AOF lose nothing stored; a restarted memory store, an overflowed
// stream and an expired TTL answer recovered: false; acks, redelivery and the failure count.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startGateway, clientPool, delay, mintToken, httpRequest, REPO, until } = require('./lib/gateway');
const { startRedis } = require('./lib/redis');

const POLICY = path.join(REPO, 'tests', 'policies', 'replay.lua');
const ADMIN_TOKEN = 'replay-admin-token';
const pool = clientPool();
const gws = [];
const redises = [];

async function gateway({ redis, set = [] } = {}) {
  const args = ['--admin-listen', '127.0.0.1:0', '--admin-token', ADMIN_TOKEN];
  if (redis) args.push('--redis', redis.url());
  const g = await startGateway({ policy: POLICY, args, set });
  let m;
  const t0 = Date.now();
  while (!(m = /admin API on 127\.0\.0\.1:(\d+)/.exec(g.logs())) && Date.now() - t0 < 5000) await delay(50);
  assert.ok(m, `no admin API line:\n${g.logs()}`);
  g.admin = (method, p, body) => httpRequest(Number(m[1]), method, p, { body, token: ADMIN_TOKEN });
  gws.push(g);
  return g;
}

const tokens = new Map();
function tokenOf(sub) {
  if (!tokens.has(sub)) tokens.set(sub, mintToken({ sub }));
  return tokens.get(sub);
}
// resume: the client says at connect that it will resume (/ws?resume=1): kept rooms it
// joins hold their live events until its resume event (docs/offline-replay.md)
const connect = (g, sub, { resume: r = false } = {}) =>
  pool.connect(g, { token: tokenOf(sub), path: r ? '/ws?resume=1' : '/ws' });

async function join(c, room) {
  const ack = await c.request('join', { room });
  assert.deepEqual(ack.data, { ok: true, room }, `join ${room}: ${JSON.stringify(ack)}`);
}

// Positions a client keeps: the last {offset, epoch} it got per channel.
function tracker(c) {
  const pos = {};
  const seen = {};
  const onFrame = c._onFrame.bind(c);
  c._onFrame = (raw, isBinary) => {
    onFrame(raw, isBinary);
    const f = c.received[c.received.length - 1];
    if (f && f.channel && typeof f.offset === 'number') {
      pos[f.channel] = { offset: f.offset, epoch: f.epoch };
      (seen[f.channel] = seen[f.channel] || []).push(f);
    }
  };
  return { pos, seen };
}

async function resume(c, streams) {
  const ack = await c.request('resume', { streams });
  assert.ok(ack.data && ack.data.streams, `resume answer: ${JSON.stringify(ack)}`);
  return ack.data.streams;
}

async function publishUser(g, user, event, data) {
  const r = await g.admin('POST', '/admin/publish', { user, event, data });
  assert.equal(r.status, 200, JSON.stringify(r.json));
}

// Offsets of one channel as received: strictly consecutive, starting right after `from`.
function assertContiguous(frames, from, what) {
  frames.forEach((f, i) => assert.equal(f.offset, from + i + 1,
    `${what}: frame ${i} has offset ${f.offset}, expected ${from + i + 1} (a gap or a duplicate)`));
}

before(async () => {
  // nothing shared: each test starts what it needs
});

after(async () => {
  await pool.closeAll();
  await Promise.all(gws.map((g) => g.stop('SIGKILL').catch(() => {})));
  await Promise.all(redises.map((r) => r.stop().catch(() => {})));
});

// The scenario of the issue on one or two gateways: alice is away while 25 room messages and
// 25 user messages arrive, comes back (on `back`), joins, and resumes while bob keeps sending.
async function awayAndBack(home, back, user) {
  const alice = await connect(home, user, { resume: true });
  const bob = await connect(home, `${user}-bob`);
  const room = `room:${user}`;
  await join(alice, room);
  await join(bob, room);
  const start = await resume(alice, { [`user:${user}`]: null, [room]: null });
  assert.equal(typeof start[room].offset, 'number', JSON.stringify(start));
  assert.equal(start[room].recovered, undefined, 'no position given: only where the stream is');
  // one message while connected: the position moves with live deliveries
  await bob.request('room:send', { room, msg: 'before' });
  const live = await alice.next('room:message');
  assert.equal(live.channel, room);
  assert.equal(live.offset, start[room].offset + 1);
  assert.equal(live.epoch, start[room].epoch);
  const had = {
    [`user:${user}`]: { offset: start[`user:${user}`].offset, epoch: start[`user:${user}`].epoch },
    [room]: { offset: live.offset, epoch: live.epoch },
  };
  await alice.close();

  for (let i = 0; i < 25; i++) {
    await bob.request('room:send', { room, msg: `away-${i}` });
    await publishUser(home, user, 'note', { n: i });
  }

  const again = await connect(back, user, { resume: true });
  const t = tracker(again);
  await join(again, room);
  const bobBack = back === home ? bob : await connect(back, `${user}-bob2`);
  if (bobBack !== bob) await join(bobBack, room);
  // a sender during the reconnect: the seam between replay and live
  let sending = true;
  let sent = 0;
  const sender = (async () => {
    while (sending) {
      await bobBack.request('room:send', { room, msg: `during-${sent++}` });
    }
  })();
  await delay(20);
  const answer = await resume(again, had);
  await delay(100);
  sending = false;
  await sender;
  await again.sync();
  await delay(200); // another gateway's last messages cross Redis
  await again.sync();

  assert.equal(answer[room].recovered, true, JSON.stringify(answer));
  assert.equal(answer[`user:${user}`].recovered, true, JSON.stringify(answer));
  assert.ok(answer[room].replayed >= 25, JSON.stringify(answer));
  assert.equal(answer[`user:${user}`].replayed, 25, JSON.stringify(answer));

  const roomFrames = t.seen[room] || [];
  assertContiguous(roomFrames, had[room].offset, room);
  const msgs = roomFrames.map((f) => f.data.msg);
  for (let i = 0; i < 25; i++) assert.equal(msgs[i], `away-${i}`, `room message ${i} in order`);
  const during = msgs.slice(25);
  assert.deepEqual(during, Array.from({ length: sent }, (_, i) => `during-${i}`),
    'every message sent during the reconnect, once, in order');
  const userFrames = t.seen[`user:${user}`] || [];
  assertContiguous(userFrames, had[`user:${user}`].offset, `user:${user}`);
  assert.deepEqual(userFrames.map((f) => f.data.n), Array.from({ length: 25 }, (_, i) => i));
  // then live again
  const lastUser = userFrames[userFrames.length - 1].offset;
  await publishUser(home, user, 'note', { n: 'live' });
  const after = await again.nextMatching((f) => f.event === 'note' && f.data.n === 'live');
  assert.equal(after.offset, lastUser + 1);
  return { sent };
}

test('away while 50 messages arrive: resume gets them in order, then live, none twice (memory store)', async () => {
  const g = await gateway();
  const { sent } = await awayAndBack(g, g, 'alice');
  assert.ok(sent > 0, 'the sender ran during the reconnect');
  const m = await httpRequest(g.port, 'GET', '/metrics/prometheus');
  assert.match(m.text, /aivo_replay_recoveries_total\{protocol="ws",recovered="true"\} [1-9]/);
  assert.match(m.text, /aivo_replay_replayed_total [1-9]/);
  assert.match(m.text, /aivo_replay_stored_total [1-9]/);
});

test('resume on another gateway (Redis Streams): the same, none missing, none twice', async () => {
  const r = await startRedis();
  redises.push(r);
  const [a, b] = await Promise.all([gateway({ redis: r }), gateway({ redis: r })]);
  await awayAndBack(a, b, 'carol');
  // the stream is in Redis, under the prefix
  const len = Number(await r.cli('XLEN', 'aivo:stream:user:carol'));
  assert.equal(len, 26);
  const h = await b.admin('GET', '/admin/history?channel=user:carol&limit=3');
  assert.equal(h.status, 200, JSON.stringify(h.json));
  assert.equal(h.json.channel, 'user:carol');
  assert.equal(h.json.top.offset, 26);
  assert.equal(h.json.messages.length, 3);
  assert.deepEqual(h.json.messages.map((x) => x.offset), [24, 25, 26]);
  assert.equal(h.json.messages[2].event, 'note');
});

test('a position outside the stream is refused per stream: not a member, not kept, bad input', async () => {
  const g = await gateway();
  const c = await connect(g, 'dave');
  await join(c, 'other:x');
  const s = await resume(c, { 'room:nope': { offset: 1, epoch: 'x' }, 'other:x': null });
  assert.deepEqual(s['room:nope'], { recovered: false, reason: 'not_member' });
  assert.deepEqual(s['other:x'], { recovered: false, reason: 'not_kept' });
  const mine = await resume(c, { $user: null }); // the own user channel, by alias
  assert.equal(typeof mine['user:dave'].offset, 'number', JSON.stringify(mine));
  const bad = await c.request('resume', { streams: { 'user:dave': { offset: -1, epoch: 'x' } } });
  assert.equal(bad.error.code, 'bad_request');
  const none = await c.request('resume', { streams: 'all' });
  assert.equal(none.error.code, 'bad_request');
  const many = {};
  for (let i = 0; i < 17; i++) many[`room:m${i}`] = null;
  const tooMany = await c.request('resume', { streams: many });
  assert.match(tooMany.error.message, /at most 16/);
  await c.sync(); // still served
});

test('overflow past the stream size and TTL expiry answer recovered: false', async () => {
  const g = await gateway();
  const c = await connect(g, 'erin');
  const p = await connect(g, 'erin-pub');
  for (const r of ['small:a', 'short:a']) {
    await join(c, r);
    await join(p, r);
  }
  const start = await resume(c, { 'small:a': null, 'short:a': null });
  await c.close();
  for (let i = 0; i < 8; i++) await p.request('room:send', { room: 'small:a', msg: i });
  await p.request('room:send', { room: 'short:a', msg: 'soon gone' });
  await delay(1300);
  const back = await connect(g, 'erin');
  await join(back, 'small:a');
  await join(back, 'short:a');
  const s = await resume(back, {
    'small:a': { offset: start['small:a'].offset, epoch: start['small:a'].epoch },
    'short:a': { offset: start['short:a'].offset, epoch: start['short:a'].epoch },
  });
  assert.equal(s['small:a'].recovered, false, JSON.stringify(s));
  assert.equal(s['small:a'].offset, 8, 'the stream top, to go on from');
  assert.equal(s['short:a'].recovered, false, JSON.stringify(s));
  assert.equal(s['small:a'].replayed, 0);
  // a position inside what is kept still recovers
  const s2 = await resume(back, { 'small:a': { offset: 5, epoch: start['small:a'].epoch } });
  assert.equal(s2['small:a'].recovered, true);
  assert.equal(s2['small:a'].replayed, 3);
});

test('memory store restarted: recovered false with a new epoch, never a silent gap', async () => {
  const g = await gateway();
  const c = await connect(g, 'frank');
  await publishUser(g, 'frank', 'note', { n: 1 });
  const f = await c.next('note');
  const port = g.port;
  await g.stop('SIGKILL');
  const g2 = await gateway();
  const c2 = await connect(g2, 'frank');
  await publishUser(g2, 'frank', 'note', { n: 2 });
  await c2.next('note');
  const s = await resume(c2, { 'user:frank': { offset: f.offset, epoch: f.epoch } });
  assert.equal(s['user:frank'].recovered, false, JSON.stringify(s));
  assert.notEqual(s['user:frank'].epoch, f.epoch);
});

test('gateway SIGKILLed, then Redis restarted with AOF: 0 stored messages lost', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-aof-'));
  let r = await startRedis({ aof: dir });
  redises.push(r);
  const g = await gateway({ redis: r });
  const c = await connect(g, 'gina');
  const start = await resume(c, { 'user:gina': null });
  await c.close();
  // the admin API answers "stored" only once the message is in Redis: SIGKILL right after
  for (let i = 0; i < 50; i++) {
    const p = await g.admin('POST', '/admin/publish', { user: 'gina', event: 'note', data: { n: i } });
    assert.equal(p.json.stored, true, JSON.stringify(p.json));
    assert.equal(p.json.offset, start['user:gina'].offset + i + 1);
  }
  await g.stop('SIGKILL');
  const g2 = await gateway({ redis: r });
  let c2 = await connect(g2, 'gina');
  let t = tracker(c2);
  let s = await resume(c2, { 'user:gina': { offset: start['user:gina'].offset, epoch: start['user:gina'].epoch } });
  assert.equal(s['user:gina'].recovered, true, JSON.stringify(s));
  assert.equal(s['user:gina'].replayed, 50);
  assertContiguous(t.seen['user:gina'], start['user:gina'].offset, 'after the gateway restart');
  await c2.close();

  const port = r.port;
  await r.stop();
  r = await startRedis({ port, aof: dir });
  redises.push(r);
  await until('the gateway reconnected to Redis', async () => {
    const m = await httpRequest(g2.port, 'GET', '/metrics/prometheus');
    return /aivo_redis_up 1/.test(m.text) && /aivo_redis_reconnects_total [1-9]/.test(m.text);
  });
  c2 = await connect(g2, 'gina');
  t = tracker(c2);
  // both Redis connections come back on their own schedule: a client retries "unavailable"
  s = await until('a resume the store answers', async () => {
    const x = await resume(c2, { 'user:gina': { offset: start['user:gina'].offset, epoch: start['user:gina'].epoch } });
    return x['user:gina'].reason === 'unavailable' ? null : x;
  });
  assert.equal(s['user:gina'].recovered, true, `after the Redis restart: ${JSON.stringify(s)}`);
  assert.equal(s['user:gina'].replayed, 50);
  assert.deepEqual(t.seen['user:gina'].map((f) => f.data.n), Array.from({ length: 50 }, (_, i) => i));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function ackScenario(g, g2, user) {
  const c = await connect(g, user);
  await publishUser(g, user, 'invoice', { n: 1 });
  await publishUser(g, user, 'invoice', { n: 2 });
  await publishUser(g, user, 'note', { n: 3 }); // kept, no ack needed
  const i1 = await c.nextMatching((f) => f.event === 'invoice' && f.data.n === 1);
  const i2 = await c.nextMatching((f) => f.event === 'invoice' && f.data.n === 2);
  const n3 = await c.next('note');
  assert.equal(i1.ackRequired, true);
  assert.equal(i2.ackRequired, true);
  assert.equal(n3.ackRequired, undefined);
  const a = await c.request('replay:ack', { channel: `user:${user}`, offset: i1.offset, epoch: i1.epoch });
  assert.deepEqual(a.data, { settled: 1 });
  await c.close();
  await delay(50); // the cursor write reaches Redis

  const c2 = await connect(g2, user);
  const again = await c2.next('invoice');
  assert.equal(again.data.n, 2, 'the unacknowledged one comes again');
  assert.equal(again.offset, i2.offset);
  await c2.sync();
  assert.equal(c2.events('invoice').length, 1, 'the acknowledged one does not');
  assert.equal(c2.events('note').length, 0, 'messages needing no ack are not re-sent');
  const a2 = await c2.request('replay:ack', { channel: `user:${user}`, offset: again.offset, epoch: again.epoch });
  assert.deepEqual(a2.data, { settled: 1 });
  await c2.close();
  await delay(50);
  const c3 = await connect(g, user);
  await c3.sync();
  await delay(100);
  assert.equal(c3.events('invoice').length, 0, 'everything acknowledged: nothing comes again');
  // bad acks are refused, the connection goes on
  const bad = await c3.request('replay:ack', { channel: `user:${user}` });
  assert.equal(bad.error.code, 'bad_request');
  const other = await c3.request('replay:ack', { channel: 'user:someone', offset: 1, epoch: 'x' });
  assert.equal(other.error.code, 'not_member');
}

test('acks: unacknowledged messages come again on the next connection, acknowledged ones do not', async () => {
  const g = await gateway();
  await ackScenario(g, g, 'henry');
});

test('acks through Redis: the cursor is shared, the next connection may be on another gateway', async () => {
  const r = await startRedis();
  redises.push(r);
  const [a, b] = await Promise.all([gateway({ redis: r }), gateway({ redis: r })]);
  await ackScenario(a, b, 'hilda');
  assert.equal(await r.cli('HGET', 'aivo:stream-meta:user:hilda', 'acked'), '2');
});

test('acks: a client that never acknowledges gets 3 re-sends with growing gaps, then the failure is counted', async () => {
  const g = await gateway();
  const c = await connect(g, 'ivan');
  const t0 = Date.now();
  await publishUser(g, 'ivan', 'invoice', { n: 1 });
  const times = [];
  for (let i = 0; i < 4; i++) {
    const f = await c.next('invoice', { timeout: 5000 });
    assert.equal(f.data.n, 1);
    times.push(Date.now());
  }
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  assert.ok(gaps[0] >= 250, `first re-send after the ack timeout (0.3 s): ${gaps}`);
  assert.ok(gaps[1] > gaps[0] && gaps[2] > gaps[1], `growing gaps: ${gaps}`);
  const failed = await until('the failure counted', async () => {
    const m = await httpRequest(g.port, 'GET', '/metrics/prometheus');
    const x = /aivo_replay_failed_total (\d+)/.exec(m.text);
    return x && Number(x[1]) >= 1 && m.text;
  }, 8000);
  assert.match(failed, /aivo_replay_redelivered_total 3/);
  await delay(300);
  assert.equal(c.events('invoice').length, 4, 'no fifth copy');
  assert.ok(Date.now() - t0 < 10000);
});

test('the replay table changes with a reload; a broken edit keeps the running rules', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-replay-policy-'));
  const file = path.join(dir, 'policy.lua');
  const write = (rules) => fs.writeFileSync(file,
    `local gw = require "aivo"\nreturn gw.policy { plugins = { "rooms" }, replay = ${rules} }\n`);
  write('{ { channel = "room:*", keep = false } }');
  const args = ['--admin-listen', '127.0.0.1:0', '--admin-token', ADMIN_TOKEN];
  const g = await startGateway({ policy: file, args });
  gws.push(g);
  let m;
  while (!(m = /admin API on 127\.0\.0\.1:(\d+)/.exec(g.logs()))) await delay(50);
  const admin = (method, p, body) => httpRequest(Number(m[1]), method, p, { body, token: ADMIN_TOKEN });
  const pub = async () => (await admin('POST', '/admin/publish', { room: 'room:a', event: 'x', data: 1 })).json;
  assert.equal((await pub()).stored, false);
  write('{ { channel = "room:*", ttl = 60, size = 5 } }');
  assert.equal((await admin('POST', '/admin/reload')).status, 200);
  const first = await pub();
  assert.equal(first.stored, true);
  assert.equal(first.offset, 1);
  write('{ { channel = "room:*", ttl = -5 } }'); // broken: refused, the running rules stay
  const bad = await admin('POST', '/admin/reload');
  assert.notEqual(bad.status, 200);
  assert.match(JSON.stringify(bad.json), /replay\[1\]: 'ttl' must be seconds/);
  assert.equal((await pub()).offset, 2);
  fs.rmSync(dir, { recursive: true, force: true });
});
