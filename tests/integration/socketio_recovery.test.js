'use strict';
// Socket.IO connection state recovery (docs/socketio.md) with the stock socket.io-client:
// with socketio.recovery.max_disconnection_ms set, a client whose transport is lost comes
// back with socket.recovered === true, in its rooms, and gets exactly the events published
// to its rooms and its user channel while it was away, in order, then live ones; after the
// maximum duration, or with another user's token, it starts afresh (recovered === false);
// with recovery off (the default) the CONNECT carries no pid.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, httpRequest, delay } = require('./lib/gateway');
const { SECRET, mintToken, client, connect, once, ack, closeAll } = require('./lib/sio');

const ADMIN_TOKEN = 'recovery-admin-token';
const MAX_MS = 1500; // gwShort's; gw keeps sessions 20 s, so that a slow machine cannot expire them
let gw;
let gwShort;
let gwOff;
let adminPort;

before(async () => {
  [gw, gwShort, gwOff] = await Promise.all([
    startGateway({
      env: { JWT_SECRET: SECRET },
      set: ['ratelimit.per_minute=0', 'socketio.recovery.max_disconnection_ms=20000'],
      args: ['--admin-listen', '127.0.0.1:0', '--admin-token', ADMIN_TOKEN],
    }),
    startGateway({
      env: { JWT_SECRET: SECRET },
      set: ['ratelimit.per_minute=0', `socketio.recovery.max_disconnection_ms=${MAX_MS}`],
    }),
    startGateway({ env: { JWT_SECRET: SECRET }, set: ['ratelimit.per_minute=0'] }),
  ]);
  let m;
  const t0 = Date.now();
  while (!(m = /admin API on 127\.0\.0\.1:(\d+)/.exec(gw.logs())) && Date.now() - t0 < 5000) await delay(50);
  assert.ok(m, `no admin API line in the log:\n${gw.logs()}`);
  adminPort = Number(m[1]);
});

after(async () => {
  await closeAll();
  await Promise.all([gw && gw.stop('SIGKILL'), gwShort && gwShort.stop('SIGKILL'), gwOff && gwOff.stop('SIGKILL')]);
});

// Run last: a session still parked when the gateway stops is freed cleanly (under the
// sanitizer build, nothing is reported).

const auth = (sub) => ({ token: mintToken({ sub }) });

async function join(s, room) {
  const [res] = await ack(s, 'join', { room });
  assert.deepEqual(res, { ok: true, room });
}

async function roomSend(s, room, msg) {
  const [res] = await ack(s, 'room:send', { room, msg });
  assert.deepEqual(res, { ok: true });
}

async function notifyUser(user, n) {
  const r = await httpRequest(adminPort, 'POST', '/admin/publish', {
    token: ADMIN_TOKEN, body: { user, event: 'notice', data: { n } },
  });
  assert.equal(r.status, 200, r.text);
}

// Every room:message and notice s gets, as 'r:<msg>' / 'u:<n>', with the offsets seen.
function recorder(s) {
  const rec = { got: [], offsets: [] };
  s.on('room:message', (data, ...rest) => {
    rec.got.push(`r:${data.msg}`);
    rec.offsets.push(rest[rest.length - 1]);
  });
  s.on('notice', (data, ...rest) => {
    rec.got.push(`u:${data.n}`);
    rec.offsets.push(rest[rest.length - 1]);
  });
  return rec;
}

async function until(cond, what, ms = 5000) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

// Loses the transport under s (the WebSocket closes without an Engine.IO close packet, as
// when a network drops): the server sees "transport close"; no automatic reconnection.
async function loseTransport(s) {
  const gone = once(s, 'disconnect');
  s.io.engine.close();
  const [reason] = await gone;
  assert.notEqual(reason, 'io client disconnect');
}

async function reconnect(s) {
  const back = once(s, 'connect');
  s.connect();
  await back;
}

async function metric(port, recovered) {
  const r = await httpRequest(port, 'GET', '/metrics');
  const re = new RegExp(`^aivo_replay_recoveries_total\\{protocol="socketio",recovered="${recovered}"\\} (\\d+)`, 'm');
  const m = re.exec(r.text);
  return m ? Number(m[1]) : 0;
}

test('recovered: the events of its room and user channel missed while away, in order, then live ones', async () => {
  const before = await metric(gw.port, 'true');
  const a = await connect(gw, '/', { transports: ['websocket'], reconnection: false, auth: auth('alice') });
  const b = await connect(gw, '/', { transports: ['websocket'], auth: auth('bob') });
  assert.match(a._pid, /^[0-9a-f]{32}$/, 'the CONNECT carries a private session id');
  const firstId = a.id;
  const rec = recorder(a);
  await join(a, 'lobby');
  await join(b, 'lobby');
  await roomSend(b, 'lobby', 'm0');
  await notifyUser('alice', 0);
  await until(() => rec.got.length === 2, 'the first two events');
  assert.deepEqual(rec.got, ['r:m0', 'u:0']);
  assert.ok(rec.offsets.every((o) => typeof o === 'string' && o.length > 0), 'every event carries an offset');

  await loseTransport(a);
  // parked, alice is no member: presence and room counts see bob only (once the gateway
  // has seen the close)
  const presence = () => httpRequest(adminPort, 'GET', '/admin/presence?room=lobby', { token: ADMIN_TOKEN });
  let pres = await presence();
  for (const t0 = Date.now(); pres.json && pres.json.connections !== 1 && Date.now() - t0 < 5000;) {
    await delay(20);
    pres = await presence();
  }
  assert.equal(pres.status, 200, pres.text);
  assert.equal(pres.json.connections, 1, pres.text);
  assert.deepEqual(pres.json.members.map((m) => m.user), ['bob']);
  const expected = [];
  for (let i = 1; i <= 10; i++) {
    await roomSend(b, 'lobby', `m${i}`);
    expected.push(`r:m${i}`);
    await notifyUser('alice', i);
    expected.push(`u:${i}`);
  }
  await reconnect(a);
  assert.equal(a.recovered, true, 'socket.recovered');
  assert.equal(a.id, firstId, 'the same socket id');
  await until(() => rec.got.length === 22, 'the missed events');
  assert.deepEqual(rec.got.slice(2), expected, 'exactly the missed events, in order');

  // still in its room: live events follow, none twice
  await roomSend(b, 'lobby', 'live');
  await notifyUser('alice', 'live');
  await until(() => rec.got.length === 24, 'the live events');
  assert.deepEqual(rec.got.slice(22), ['r:live', 'u:live']);
  assert.equal(new Set(rec.offsets).size, rec.offsets.length, 'offsets are unique');
  assert.ok(await metric(gw.port, 'true') >= before + 1, 'aivo_replay_recoveries_total{recovered="true"}');
  assert.match(gw.logs(), /connection state recovered/);

  // a second loss right away recovers again, from where it is now
  await loseTransport(a);
  await roomSend(b, 'lobby', 'again');
  await reconnect(a);
  assert.equal(a.recovered, true);
  await until(() => rec.got.length === 25, 'the event missed the second time');
  assert.equal(rec.got[24], 'r:again');
  a.disconnect();
  b.disconnect();
});

test('a client that had got no event yet is caught up from the start of its session', async () => {
  const a = await connect(gw, '/', { transports: ['websocket'], reconnection: false, auth: auth('carol') });
  const b = await connect(gw, '/', { transports: ['websocket'], auth: auth('dave') });
  const rec = recorder(a);
  await join(a, 'quiet');
  await join(b, 'quiet');
  await loseTransport(a);
  await roomSend(b, 'quiet', 'q1');
  await notifyUser('carol', 1);
  await reconnect(a);
  assert.equal(a.recovered, true);
  await until(() => rec.got.length === 2, 'the missed events');
  assert.deepEqual(rec.got, ['r:q1', 'u:1']);
  a.disconnect();
  b.disconnect();
});

test('after max_disconnection_ms: not recovered, a new session (new id and pid), no replay', async () => {
  const before = await metric(gwShort.port, 'false');
  const a = await connect(gwShort, '/', { transports: ['websocket'], reconnection: false, auth: auth('erin') });
  const b = await connect(gwShort, '/', { transports: ['websocket'], auth: auth('frank') });
  const rec = recorder(a);
  await join(a, 'slow');
  await join(b, 'slow');
  await roomSend(b, 'slow', 's0');
  await until(() => rec.got.length === 1, 'the first event');
  const { id, _pid: pid } = a;
  await loseTransport(a);
  await roomSend(b, 'slow', 's1');
  await delay(MAX_MS + 700);
  await roomSend(b, 'slow', 's2');
  await reconnect(a);
  assert.equal(a.recovered, false, 'socket.recovered');
  assert.notEqual(a.id, id);
  assert.match(a._pid, /^[0-9a-f]{32}$/);
  assert.notEqual(a._pid, pid);
  // not back in the room either: the app joins again
  await roomSend(b, 'slow', 's3');
  await delay(300);
  assert.deepEqual(rec.got, ['r:s0']);
  assert.ok(await metric(gwShort.port, 'false') >= before + 1, 'aivo_replay_recoveries_total{recovered="false"}');

  // the new session recovers in turn, although the client still holds the old session's
  // last offset (it keeps it until a new event comes)
  await join(a, 'slow');
  await loseTransport(a);
  await roomSend(b, 'slow', 's4');
  await reconnect(a);
  assert.equal(a.recovered, true, 'the new session is recovered');
  await until(() => rec.got.length === 2, 'the event missed by the new session');
  assert.deepEqual(rec.got, ['r:s0', 'r:s4']);
  a.disconnect();
  b.disconnect();
});

test("another user's token cannot take over a parked session; its owner still can", async () => {
  const a = await connect(gw, '/', { transports: ['websocket'], reconnection: false, auth: auth('grace') });
  const b = await connect(gw, '/', { transports: ['websocket'], auth: auth('heidi') });
  const rec = recorder(a);
  await join(a, 'private');
  await join(b, 'private');
  await roomSend(b, 'private', 'p0');
  await until(() => rec.got.length === 1, 'the first event');
  await loseTransport(a);
  await roomSend(b, 'private', 'p1');

  // mallory presents grace's pid and offset with her own (valid) token
  const m = client(gw, '/', { transports: ['websocket'], reconnection: false, auth: auth('mallory') });
  m._pid = a._pid;
  m._lastOffset = a._lastOffset;
  const mrec = recorder(m);
  await once(m, 'connect');
  assert.equal(m.recovered, false, "another user's token is not recovered");
  assert.notEqual(m._pid, a._pid);
  await delay(200);
  assert.deepEqual(mrec.got, [], 'nothing of the parked session reaches another user');
  m.disconnect();

  await reconnect(a);
  assert.equal(a.recovered, true, 'the owner still recovers it');
  await until(() => rec.got.length === 2, 'the missed event');
  assert.deepEqual(rec.got, ['r:p0', 'r:p1']);
  a.disconnect();
  b.disconnect();
});

test('recovery off (the default): no pid in the CONNECT, no offsets, never recovered', async () => {
  const a = await connect(gwOff, '/', { transports: ['websocket'], reconnection: false, auth: auth('ivan') });
  const b = await connect(gwOff, '/', { transports: ['websocket'], auth: auth('judy') });
  assert.equal(a._pid, undefined, 'no pid');
  const args = [];
  a.on('room:message', (...xs) => args.push(xs));
  await join(a, 'off');
  await join(b, 'off');
  await roomSend(b, 'off', 'o1');
  await until(() => args.length === 1, 'the event');
  assert.equal(args[0].length, 1, 'no offset argument');
  await loseTransport(a);
  await reconnect(a);
  assert.ok(!a.recovered, `recovered is ${a.recovered}`); // the stock client leaves it undefined without a pid
  assert.equal(a._pid, undefined);
  a.disconnect();
  b.disconnect();
});

test('a gateway stopped with a session still parked exits cleanly', async () => {
  const a = await connect(gw, '/', { transports: ['websocket'], reconnection: false, auth: auth('kim') });
  await join(a, 'left-behind');
  await loseTransport(a);
  await closeAll();
  const res = await gw.stop('SIGTERM');
  assert.equal(res.code, 0, gw.logs());
  assert.doesNotMatch(gw.logs(), /Sanitizer|runtime error/);
});
