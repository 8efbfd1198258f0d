'use strict';
// Rooms and agent plugins of the default policy: membership decides who gets
// room:message, the sender never gets its own message, a connection's user
// room counts as joined, and agent:learning sessions belong to a connection.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, clientPool } = require('./lib/gateway');

let gw;
let gwCapped;
const pool = clientPool();

before(async () => {
  [gw, gwCapped] = await Promise.all([
    startGateway(),
    startGateway({ set: ['rooms.max_per_conn=3'] }),
  ]);
});

after(async () => {
  await pool.closeAll();
  await Promise.all([gw && gw.stop('SIGKILL'), gwCapped && gwCapped.stop('SIGKILL')]);
});

async function join(c, room) {
  const ack = await c.request('join', { room });
  assert.deepEqual(ack.data, { ok: true, room }, `join ${room}: ${JSON.stringify(ack)}`);
}

function assertError(ack, code, what) {
  assert.ok(ack.error, `${what}: expected error ${code}, got ${JSON.stringify(ack)}`);
  assert.equal(ack.error.code, code, `${what}: ${JSON.stringify(ack.error)}`);
  assert.equal(typeof ack.error.message, 'string', `${what}: error has no message`);
}

// Learn a connection's identity the way a client would: from the `from` field
// of a message it sent to a room another client is in.
async function identityOf(sender, observer, room) {
  await join(sender, room);
  await join(observer, room);
  const ack = await sender.request('room:send', { room, msg: 'whoami' });
  assert.deepEqual(ack.data, { ok: true });
  const ev = await observer.next('room:message');
  assert.equal(ev.data.msg, 'whoami');
  return ev.data.from;
}

test('room:send reaches the other members only, with room, from and msg', async () => {
  const [a, b, c] = await Promise.all([pool.connect(gw), pool.connect(gw), pool.connect(gw)]);
  await join(a, 'r');
  await join(b, 'r');

  const ack = await a.request('room:send', { room: 'r', msg: 'hello room' });
  assert.deepEqual(ack.data, { ok: true });
  assert.equal(ack.error, undefined);

  const ev = await b.next('room:message');
  assert.equal(ev.data.room, 'r');
  assert.equal(ev.data.msg, 'hello room');
  // the identity is the token's subject (lib/gateway.js mints user-<n>)
  assert.match(ev.data.from, /^user-\d+$/, 'the identity is the token subject');

  // Structured messages arrive intact.
  const payload = { text: 'ünïcode ✓', n: 3, list: [1, 2, { x: null }] };
  await a.request('room:send', { room: 'r', msg: payload });
  const ev2 = await b.next('room:message');
  assert.deepEqual(ev2.data, { room: 'r', from: ev.data.from, msg: payload });

  // The sender's own queue got its acks and nothing else; C never joined.
  await a.sync();
  await c.sync();
  assert.deepEqual(a.events('room:message'), [], 'sender must not receive its own message');
  assert.deepEqual(c.events('room:message'), [], 'non-member must not receive room messages');
  assert.equal(b.events('room:message').length, 2);
});

test('identities are distinct per connection and stable across messages', async () => {
  const [a, b] = await Promise.all([pool.connect(gw), pool.connect(gw)]);
  const idA = await identityOf(a, b, 'ident-1');
  const idB = await identityOf(b, a, 'ident-2');
  assert.match(idA, /^user-\d+$/);
  assert.match(idB, /^user-\d+$/);
  assert.notEqual(idA, idB);
  await a.request('room:send', { room: 'ident-1', msg: 'again' });
  const ev = await b.next('room:message');
  assert.equal(ev.data.from, idA);
});

test('room:send to a room the sender has not joined is refused with not_in_room', async () => {
  const [a, b] = await Promise.all([pool.connect(gw), pool.connect(gw)]);
  await join(b, 'closed-club');
  const ack = await a.request('room:send', { room: 'closed-club', msg: 'let me in' });
  assertError(ack, 'not_in_room', 'room:send without join');

  // Without an ack the refusal arrives as an error event.
  a.send('room:send', { room: 'closed-club', msg: 'still not' });
  const ev = await a.next('error');
  assert.equal(ev.data.code, 'not_in_room');

  await b.sync();
  assert.deepEqual(b.events('room:message'), [], 'refused messages must not be delivered');
});

test('after leave a client no longer receives the room', async () => {
  const [a, b] = await Promise.all([pool.connect(gw), pool.connect(gw)]);
  await join(a, 'lv');
  await join(b, 'lv');
  await a.request('room:send', { room: 'lv', msg: 'before' });
  assert.equal((await b.next('room:message')).data.msg, 'before');

  const left = await b.request('leave', { room: 'lv' });
  assert.deepEqual(left.data, { ok: true, room: 'lv' });

  const ack = await a.request('room:send', { room: 'lv', msg: 'after' });
  assert.deepEqual(ack.data, { ok: true });
  await b.sync();
  assert.deepEqual(b.events('room:message').map((e) => e.data.msg), ['before']);

  // Having left, B may not send there either.
  assertError(await b.request('room:send', { room: 'lv', msg: 'x' }), 'not_in_room', 'send after leave');
});

test('a connection counts as a member of its own user room', async () => {
  const [a, b] = await Promise.all([pool.connect(gw), pool.connect(gw)]);
  const idA = await identityOf(a, b, 'learn-id');

  const own = await a.request('room:send', { room: `user:${idA}`, msg: 'note to self' });
  assert.equal(own.error, undefined, `own user room: ${JSON.stringify(own)}`);
  assert.deepEqual(own.data, { ok: true });

  // Somebody else's user room is not joined.
  const other = await b.request('room:send', { room: `user:${idA}`, msg: 'psst' });
  assertError(other, 'not_in_room', "another user's room");

  await a.sync();
  assert.equal(a.events('room:message').length, 0, 'the sender is excluded from its own user room');
});

test('bad room names are refused with bad_request', async () => {
  const c = await pool.connect(gw);
  for (const [what, data] of [
    ['empty name', { room: '' }],
    ['201 bytes', { room: 'x'.repeat(201) }],
    ['number', { room: 42 }],
    ['missing', {}],
  ]) {
    assertError(await c.request('join', data), 'bad_request', `join ${what}`);
  }
  // 200 bytes is still allowed (limit is counted in bytes: 100 two-byte chars).
  await join(c, 'é'.repeat(100));
  await join(c, 'y'.repeat(200));
  assertError(await c.request('join', { room: 'é'.repeat(101) }), 'bad_request', 'join 202 bytes');
});

test('joining past rooms.max_per_conn is refused with too_many_rooms', async () => {
  const c = await pool.connect(gwCapped);
  await join(c, 'cap-1');
  await join(c, 'cap-2');
  // Whether the user room counts toward the cap is the gateway's choice, so
  // the limit shows at the 3rd or 4th join, and stays until a room is left.
  const third = await c.request('join', { room: 'cap-3' });
  const full = third.error ? third : await c.request('join', { room: 'cap-4' });
  assertError(full, 'too_many_rooms', 'join at the cap');
  assertError(await c.request('join', { room: 'cap-5' }), 'too_many_rooms', 'join still at the cap');

  assert.deepEqual((await c.request('leave', { room: 'cap-1' })).data, { ok: true, room: 'cap-1' });
  await join(c, 'cap-5');
});

test('agent:learning sessions: start, end, unknown session, bad action', async () => {
  const [a, b] = await Promise.all([pool.connect(gw), pool.connect(gw)]);

  const s1 = await a.request('agent:learning', { action: 'start_session' });
  assert.equal(s1.error, undefined, JSON.stringify(s1));
  assert.equal(s1.data.ok, true);
  assert.equal(typeof s1.data.sessionId, 'string');
  assert.ok(s1.data.sessionId.length > 0);
  const s2 = await a.request('agent:learning', { action: 'start_session' });
  assert.notEqual(s2.data.sessionId, s1.data.sessionId, 'each session gets a new id');

  // A session belongs to the connection that started it.
  assertError(
    await b.request('agent:learning', { action: 'end_session', sessionId: s1.data.sessionId }),
    'unknown_session', 'end_session from another connection');

  const end = await a.request('agent:learning', { action: 'end_session', sessionId: s1.data.sessionId });
  assert.deepEqual(end.data, { ok: true, sessionId: s1.data.sessionId });

  assertError(
    await a.request('agent:learning', { action: 'end_session', sessionId: 'no-such-session' }),
    'unknown_session', 'end_session of an id never started');

  const end2 = await a.request('agent:learning', { action: 'end_session', sessionId: s2.data.sessionId });
  assert.deepEqual(end2.data, { ok: true, sessionId: s2.data.sessionId });

  for (const [what, data] of [
    ['unknown action', { action: 'dance' }],
    ['missing action', {}],
    ['no data', undefined],
    ['non-object data', 'start_session'],
  ]) {
    assertError(await a.request('agent:learning', data), 'bad_request', what);
  }
});
