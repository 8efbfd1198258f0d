'use strict';
// Connection limits for Socket.IO clients (docs/ratelimit.md, "Connection limits"), with the
// real socket.io-client from several 127.0.0.x source addresses: the per-address limits
// (connections.max_per_ip, connections.per_ip_per_second) refuse the Engine.IO handshake with
// HTTP 429 (the first polling GET, or the WebSocket of a websocket-only client); the upgrade
// of a polling session and the namespaces of one client are not new connections. The
// identity limit (connections.max_per_user) refuses the Socket.IO CONNECT with CONNECT_ERROR
// {message: "rate_limited", data: {reason}}, counting /ws connections of the identity too.
// tests/policies/socketio.lua: no token needed, the identity is the auth payload's `user`.

const http = require('node:http');
const path = require('node:path');
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, connect: wsConnect, delay, TEST_POLICIES } = require('./lib/gateway');
const { manager, track, connect, connectError, once, ack, closeAll } = require('./lib/sio');
const { metrics, upgrade } = require('./lib/traffic');

const POLICY = path.join(TEST_POLICIES, 'socketio.lua');
const ORIGIN = 'http://localhost:3000'; // origins.allowed's default
const gateways = [];

async function gateway(set) {
  const gw = await startGateway({ policy: POLICY, set, args: ['--admin-listen', 'off'] });
  gateways.push(gw);
  return gw;
}

// A graceful stop must exit 0: under an ASan build a leak would fail it here.
after(async () => {
  await closeAll();
  for (const gw of gateways) {
    const r = await gw.stop('SIGTERM');
    assert.equal(r.code, 0, `gateway exit ${JSON.stringify(r)}\n${gw.logs().slice(-3000)}`);
  }
});

// socket.io-client options for a source address: `localAddress` for its WebSocket, an agent
// bound to the address for its long-polling requests.
function from(ip, opts = {}) {
  return { localAddress: ip, agent: new http.Agent({ localAddress: ip }), ...opts };
}

// A raw Engine.IO polling handshake (GET without sid) from ip: {status, headers, body}.
function pollHandshake(gw, ip, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: gw.port, path: '/socket.io/?EIO=4&transport=polling', localAddress: ip, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    }).on('error', reject);
  });
}

const wsUrl = (gw) => `ws://127.0.0.1:${gw.port}/socket.io/?EIO=4&transport=websocket`;

function assert429(r, reason, what) {
  assert.equal(r.status, 429, `${what}: ${r.status} ${r.body}`);
  assert.equal(r.headers['content-type'], 'application/json', what);
  assert.match(r.headers['retry-after'], /^\d+$/, what);
  const body = JSON.parse(r.body);
  assert.equal(body.error, 'rate_limited', what);
  assert.equal(body.reason, reason, what);
  assert.ok(Number.isInteger(body.retryAfterMs) && body.retryAfterMs > 0, r.body);
}

async function refused(gw, reason) {
  return (await metrics(gw.port)).get(`aivo_connections_refused_total{reason="${reason}"}`) || 0;
}

// Waits until fn() is true (bounded).
async function until(fn, what, ms = 5000) {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}

test('websocket only: max_per_ip refuses the WebSocket handshake with 429, from that address only', async () => {
  const gw = await gateway(['connections.max_per_ip=2']);
  const opts = (ip, user) => from(ip, { transports: ['websocket'], reconnection: false, auth: { user } });
  const a = await connect(gw, '/', opts('127.0.0.2', 'a'));
  await connect(gw, '/', opts('127.0.0.2', 'b'));
  // socket.io-client sees the refused handshake as a connect_error
  const err = await connectError(gw, '/', opts('127.0.0.2', 'c'));
  assert.equal(err.message, 'websocket error');
  assert.equal(err.type, 'TransportError');
  assert.match(String(err.description && err.description.message), /429/);
  // what it was refused with: the /ws upgrade's 429
  assert429(await upgrade(wsUrl(gw), { localAddress: '127.0.0.2' }), 'too many connections from this address', 'raw websocket');
  assert.equal(await refused(gw, 'ip_concurrent'), 2);
  // another address is not affected
  const other = await connect(gw, '/', opts('127.0.0.3', 'd'));
  assert.equal((await ack(other, 'echo', 'hi'))[0], 'hi');
  // one of the two goes: the address may connect again
  a.disconnect();
  await until(async () => {
    const r = await upgrade(wsUrl(gw), { localAddress: '127.0.0.2' });
    if (r.open) r.open.close();
    return !!r.open;
  }, 'the address to be admitted again');
});

test('default transports: max_per_ip refuses the first polling GET with 429; upgrades and namespaces are no new connections', async () => {
  const gw = await gateway(['connections.max_per_ip=2']);
  const opts = (ip, user) => from(ip, { reconnection: false, auth: { user } });
  // two clients: polling first, then each upgrades to websocket (the upgrade is refused no more
  // than the namespace a client adds: they are not new connections)
  const m = manager(gw, from('127.0.0.4', { reconnection: false }));
  const main = track(m.socket('/', { auth: { user: 'm1' } }));
  const admin = track(m.socket('/admin', { auth: { user: 'm1-admin' } }));
  await Promise.all([once(main, 'connect'), once(admin, 'connect')]);
  const b = await connect(gw, '/', opts('127.0.0.4', 'm2'));
  for (const s of [main, b]) {
    if (s.io.engine.transport.name !== 'websocket') await once(s.io.engine, 'upgrade');
  }
  assert.equal((await ack(admin, 'echo', 'admin after upgrade'))[0], 'admin after upgrade');
  assert.equal((await ack(b, 'echo', 'b after upgrade'))[0], 'b after upgrade');

  const err = await connectError(gw, '/', opts('127.0.0.4', 'm3'));
  assert.equal(err.message, 'xhr poll error');
  assert.equal(err.description, 429);
  // the refusal, raw, from a browser: CORS headers so the page can read it
  const r = await pollHandshake(gw, '127.0.0.4', { origin: ORIGIN });
  assert429(r, 'too many connections from this address', 'polling handshake');
  assert.equal(r.headers['access-control-allow-origin'], ORIGIN);
  // a websocket-only client from there is refused as well (the same count)
  const ws = await connectError(gw, '/', from('127.0.0.4', { transports: ['websocket'], auth: { user: 'm4' } }));
  assert.equal(ws.message, 'websocket error');
  // and so is the /ws endpoint: one count per address for both protocols
  const native = await upgrade(`ws://127.0.0.1:${gw.port}/ws`, { localAddress: '127.0.0.4' });
  assert.equal(native.status, 429);
  assert.equal(await refused(gw, 'ip_concurrent'), 4);
  // the first client goes (both its namespaces): the address may connect again
  main.disconnect();
  admin.disconnect();
  let again;
  await until(async () => {
    try { again = await connect(gw, '/', opts('127.0.0.4', 'm5')); } catch { return false; }
    return true;
  }, 'the address to be admitted again');
  assert.equal((await ack(again, 'echo', 'back'))[0], 'back');
  // the other client was never disturbed
  assert.equal((await ack(b, 'echo', 'still'))[0], 'still');
});

test('per_ip_per_second: the handshake over the rate gets 429 with Retry-After, then is allowed again', async () => {
  const gw = await gateway(['connections.per_ip_per_second=3']);
  for (let i = 0; i < 3; i++) {
    const r = await pollHandshake(gw, '127.0.0.5');
    assert.equal(r.status, 200, `handshake ${i + 1}: ${r.status} ${r.body}`);
    assert.match(r.body, /^0\{"sid":/);
  }
  const r = await pollHandshake(gw, '127.0.0.5');
  assert429(r, 'too many new connections from this address', 'polling handshake');
  assert.equal(r.headers['retry-after'], '1');
  assert.ok(JSON.parse(r.body).retryAfterMs <= 334, r.body);
  // the websocket handshake draws on the same budget
  assert429(await upgrade(wsUrl(gw), { localAddress: '127.0.0.5' }), 'too many new connections from this address', 'websocket');
  const err = await connectError(gw, '/', from('127.0.0.5', { transports: ['websocket'], auth: { user: 'x' } }));
  assert.equal(err.message, 'websocket error');
  assert.equal(await refused(gw, 'ip_rate'), 3);
  // another address is not affected
  const other = await connect(gw, '/', from('127.0.0.6', { auth: { user: 'y' } }));
  assert.equal((await ack(other, 'echo', 'y'))[0], 'y');
  await delay(400); // one new connection per 333 ms
  const later = await connect(gw, '/', from('127.0.0.5', { transports: ['websocket'], auth: { user: 'x' } }));
  assert.equal((await ack(later, 'echo', 'x'))[0], 'x');
});

test('max_per_user: the CONNECT over the cap gets CONNECT_ERROR "rate_limited"; /ws connections count too', async () => {
  const gw = await gateway(['connections.max_per_user=2']);
  const before = await refused(gw, 'user_concurrent');
  const dana = (transports) => ({ transports, reconnection: false, auth: { user: 'dana' } });
  const a = await connect(gw, '/', dana(['websocket']));
  await connect(gw, '/', dana(['polling', 'websocket']));
  for (const transports of [['websocket'], ['polling']]) {
    const err = await connectError(gw, '/', dana(transports));
    assert.equal(err.message, 'rate_limited', transports[0]);
    assert.deepEqual(err.data, { reason: 'too many connections for this identity' }, transports[0]);
  }
  // another identity is not affected
  const eve = await connect(gw, '/', { transports: ['websocket'], auth: { user: 'eve' } });
  assert.equal((await ack(eve, 'whoami'))[0].user, 'eve');
  assert.equal(await refused(gw, 'user_concurrent'), before + 2);
  // one of dana's goes: a native /ws connection takes the place, and the next Socket.IO one is refused
  a.disconnect();
  let native;
  await until(async () => {
    try { native = await wsConnect(gw, { path: '/ws?user=dana', token: null }); } catch { return false; }
    return true;
  }, 'dana to be admitted again on /ws');
  assert.equal((await native.request('echo', 'native')).data, 'native');
  const mid = await refused(gw, 'user_concurrent');
  const err = await connectError(gw, '/', dana(['websocket']));
  assert.equal(err.message, 'rate_limited');
  assert.equal(await refused(gw, 'user_concurrent'), mid + 1);
  await native.close();
  await until(async () => {
    try {
      (await connect(gw, '/', dana(['websocket']))).disconnect();
      return true;
    } catch { return false; }
  }, 'dana to be admitted again on Socket.IO');
});

test('max_per_user counts clients: one client\'s namespaces count once', async () => {
  const gw = await gateway(['connections.max_per_user=1']);
  for (const transports of [['websocket'], ['polling', 'websocket']]) {
    const user = `solo-${transports.length}`;
    const m = manager(gw, { transports, reconnection: false });
    const main = track(m.socket('/', { auth: { user } }));
    await once(main, 'connect');
    const admin = track(m.socket('/admin', { auth: { user } }));
    await once(admin, 'connect');
    assert.equal((await ack(admin, 'whoami'))[0].user, user);
    // another client as the same identity: over the cap, on any namespace
    for (const nsp of ['/', '/admin']) {
      const err = await connectError(gw, nsp, { transports, auth: { user } });
      assert.equal(err.message, 'rate_limited', `${transports}: ${nsp}`);
    }
    // its namespaces go: the identity may connect again
    main.disconnect();
    admin.disconnect();
    await until(async () => {
      try {
        (await connect(gw, '/', { transports: ['websocket'], reconnection: false, auth: { user } })).disconnect();
        return true;
      } catch { return false; }
    }, `${user} to be admitted again`);
  }
});

test('the limits are off by default', async () => {
  const gw = await gateway([]);
  const open = [];
  for (let i = 0; i < 8; i++) {
    const transports = i % 2 ? ['websocket'] : ['polling', 'websocket'];
    open.push(await connect(gw, '/', from('127.0.0.7', { transports, auth: { user: 'same' } })));
  }
  for (const s of open) assert.equal((await ack(s, 'echo', 1))[0], 1);
  for (const s of open) s.disconnect();
});
