'use strict';
// Engine.IO underneath Socket.IO: the handshake and its errors over HTTP, CORS for
// long-polling, the heartbeat with short ping settings (clients survive idle time longer
// than pingInterval + pingTimeout; a peer that never answers is dropped), malformed packets,
// maxPayload, and a client reconnecting by itself after the gateway closed its connection.

const path = require('node:path');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, TEST_POLICIES, delay } = require('./lib/gateway');
const { client, connect, once, ack, closeAll, eioUrl, rawWs } = require('./lib/sio');
const { OP, connectRaw } = require('./lib/wsraw');

const POLICY = path.join(TEST_POLICIES, 'socketio.lua');
let gw;

before(async () => {
  gw = await startGateway({ policy: POLICY });
});

after(async () => {
  await closeAll();
  if (gw) await gw.stop('SIGKILL');
});

const OPEN_KEYS = ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades'];

test('the polling handshake: the open packet has exactly sid, upgrades, pingInterval, pingTimeout, maxPayload', async () => {
  const res = await fetch(eioUrl(gw, 'EIO=4&transport=polling'));
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  const body = await res.text();
  assert.equal(body[0], '0');
  const open = JSON.parse(body.slice(1));
  assert.deepEqual(Object.keys(open).sort(), OPEN_KEYS);
  assert.deepEqual(open.upgrades, ['websocket']);
  assert.equal(open.pingInterval, 25000);
  assert.equal(open.pingTimeout, 20000);
  assert.equal(open.maxPayload, 1000000);
  // a websocket session cannot upgrade further
  const ws = rawWs(gw);
  const first = JSON.parse((await ws.next()).slice(1));
  assert.deepEqual(Object.keys(first).sort(), OPEN_KEYS);
  assert.deepEqual(first.upgrades, []);
  ws.close();
});

test('HTTP 400 with the Engine.IO error body for a bad EIO version, transport, method or sid', async () => {
  const cases = [
    ['transport=polling', 'GET', 5, 'Unsupported protocol version'],
    ['EIO=3&transport=polling', 'GET', 5, 'Unsupported protocol version'],
    ['EIO=4', 'GET', 0, 'Transport unknown'],
    ['EIO=4&transport=flash', 'GET', 0, 'Transport unknown'],
    ['EIO=4&transport=polling', 'POST', 2, 'Bad handshake method'],
    ['EIO=4&transport=polling', 'PUT', 2, 'Bad handshake method'],
    ['EIO=4&transport=polling&sid=nope', 'GET', 1, 'Session ID unknown'],
    ['EIO=4&transport=polling&sid=nope', 'POST', 1, 'Session ID unknown'],
  ];
  for (const [q, method, code, message] of cases) {
    const res = await fetch(eioUrl(gw, q), { method, body: method === 'GET' ? undefined : '40' });
    assert.equal(res.status, 400, `${method} ${q}`);
    assert.deepEqual(await res.json(), { code, message }, `${method} ${q}`);
  }
  // a websocket upgrade with a bad query is refused with the same status
  const ws = rawWs(gw, 'EIO=3&transport=websocket');
  const refused = new Promise((resolve) => ws.on('unexpected-response', (req, res) => { req.destroy(); resolve(res.statusCode); }));
  assert.equal(await refused, 400);
});

test('CORS for polling: the allowed origin is echoed with credentials; preflight; other origins get 403', async () => {
  const origin = 'http://localhost:3000'; // the default, as the old service
  const pre = await fetch(eioUrl(gw, 'EIO=4&transport=polling'), {
    method: 'OPTIONS',
    headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), origin);
  assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
  assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
  assert.equal(pre.headers.get('access-control-allow-headers'), 'content-type');

  const hs = await fetch(eioUrl(gw, 'EIO=4&transport=polling'), { headers: { Origin: origin } });
  assert.equal(hs.status, 200);
  assert.equal(hs.headers.get('access-control-allow-origin'), origin);
  assert.equal(hs.headers.get('access-control-allow-credentials'), 'true');
  const sid = JSON.parse((await hs.text()).slice(1)).sid;
  const post = await fetch(eioUrl(gw, `EIO=4&transport=polling&sid=${sid}`), { method: 'POST', body: '40', headers: { Origin: origin } });
  assert.equal(await post.text(), 'ok');
  assert.equal(post.headers.get('access-control-allow-origin'), origin);

  const bad = await fetch(eioUrl(gw, 'EIO=4&transport=polling'), { headers: { Origin: 'http://evil.example' } });
  assert.equal(bad.status, 403);
  assert.deepEqual(await bad.json(), { code: 4, message: 'Forbidden' });
  assert.equal(bad.headers.get('access-control-allow-origin'), null);
});

test('CORS_ORIGIN: a comma list of allowed origins', async () => {
  const g = await startGateway({ policy: POLICY, env: { CORS_ORIGIN: 'http://a.example,https://b.example:8443' } });
  try {
    for (const [origin, status] of [['http://a.example', 200], ['https://b.example:8443', 200], ['http://localhost:3000', 403]]) {
      const res = await fetch(eioUrl(g, 'EIO=4&transport=polling'), { headers: { Origin: origin } });
      assert.equal(res.status, status, origin);
      assert.equal(res.headers.get('access-control-allow-origin'), status === 200 ? origin : null);
    }
  } finally {
    await g.stop('SIGKILL');
  }
});

test('raw long-polling: packets of one payload are split on \\x1e; binary is "b" + base64; a close packet ends the session', async () => {
  const hs = await (await fetch(eioUrl(gw, 'EIO=4&transport=polling'))).text();
  const sid = JSON.parse(hs.slice(1)).sid;
  const url = eioUrl(gw, `EIO=4&transport=polling&sid=${sid}`);
  const post = (body) => fetch(url, { method: 'POST', body }).then((r) => r.text());
  assert.equal(await post('40'), 'ok');
  let got = await (await fetch(url)).text();
  assert.match(got, /^40\{"sid":"[^"]+"\}\x1e42\["welcome",/);
  // an event with a binary attachment, in one payload: acked with the attachment back
  assert.equal(await post('451-1["echo",{"_placeholder":true,"num":0}]\x1ebAQID'), 'ok');
  got = await (await fetch(url)).text();
  assert.equal(got, '461-1[{"_placeholder":true,"num":0}]\x1ebAQID');
  // a close packet: a pending poll gets a noop, then the sid is gone
  const pending = fetch(url).then(async (r) => [r.status, await r.text()]);
  await delay(50);
  assert.equal(await post('1'), 'ok');
  assert.deepEqual(await pending, [200, '6']);
  assert.equal((await fetch(url)).status, 400);
});

test('a malformed packet closes the connection', async () => {
  for (const bad of ['4abc', '42{}', '42abc["echo"]', '49', '452-["echo"]', '41["x"]']) {
    const ws = rawWs(gw);
    await ws.next(); // open packet
    ws.send('40');
    await ws.next(); // CONNECT reply
    if (bad !== '452-["echo"]') {
      ws.send(bad);
    } else { // a binary event followed by text instead of its attachments
      ws.send(bad);
      ws.send('42["echo"]');
    }
    const closed = await Promise.race([ws.closed, delay(3000).then(() => 'still open')]);
    assert.notEqual(closed, 'still open', `${bad} should close the connection`);
  }
});

test('a websocket message over maxPayload closes the connection', async () => {
  const g = await startGateway({ policy: POLICY, set: ['socketio.max_payload=1000'] });
  try {
    const ws = rawWs(g);
    const open = JSON.parse((await ws.next()).slice(1));
    assert.equal(open.maxPayload, 1000);
    ws.send('40');
    await ws.next();
    ws.send(`42["echo","${'x'.repeat(2000)}"]`);
    assert.equal(await ws.closed, 1009);
  } finally {
    await g.stop('SIGKILL');
  }
});

test('an unmasked client frame on the Engine.IO websocket closes 1002 (RFC 6455 5.1)', async () => {
  const c = await connectRaw(gw.port, '/socket.io/?EIO=4&transport=websocket');
  const open = await c.nextMessage(4000);
  assert.equal(open && open.type, 'text');
  assert.match(String(open.data), /^0\{/);
  c.send({ opcode: OP.TEXT, payload: '40', mask: false });
  for (;;) { // the CONNECT must not be answered
    const m = await c.nextMessage(4000);
    assert.ok(m, 'expected a close 1002, got nothing');
    if (m.type === 'close') break;
    assert.ok(!String(m.data).startsWith('40'), `the unmasked CONNECT was handled: ${m.data}`);
  }
  assert.equal(c.closeFrame.code, 1002);
  c.sock.destroy();
});

test('heartbeat: with pingInterval 200 / pingTimeout 150 clients stay connected through idle time', async () => {
  const g = await startGateway({ policy: POLICY, set: ['socketio.ping_interval=200', 'socketio.ping_timeout=150'] });
  try {
    const clients = await Promise.all([
      connect(g, '/', { transports: ['websocket'], reconnection: false }),
      connect(g, '/', { transports: ['polling'], reconnection: false }),
      connect(g, '/', { reconnection: false }),
    ]);
    const drops = [];
    clients.forEach((s, i) => s.on('disconnect', (r) => drops.push(`${i}: ${r}`)));
    let pings = 0;
    clients[0].io.engine.on('ping', () => { pings++; });
    await delay(1500); // over four times pingInterval + pingTimeout
    assert.deepEqual(drops, []);
    assert.ok(pings >= 4, `pings received: ${pings}`);
    for (const s of clients) assert.equal((await ack(s, 'echo', 'alive'))[0], 'alive');
    for (const s of clients) s.disconnect();
  } finally {
    await g.stop('SIGKILL');
  }
});

test('heartbeat: a peer that never answers pings is closed after pingInterval + pingTimeout', async () => {
  const g = await startGateway({ policy: POLICY, set: ['socketio.ping_interval=200', 'socketio.ping_timeout=150'] });
  try {
    const ws = rawWs(g);
    await ws.next(); // open packet
    ws.send('40');
    await ws.next(); // CONNECT reply
    let f;
    do f = await ws.next(); while (f !== '2'); // the ping, never answered
    const t0 = Date.now();
    await ws.closed;
    const took = Date.now() - t0;
    assert.ok(took >= 100 && took < 2000, `closed ${took} ms after the ping`);
  } finally {
    await g.stop('SIGKILL');
  }
});

test('reconnect: the gateway closes the connection (drain, restart) and the client reconnects by itself', async () => {
  const first = await startGateway({ policy: POLICY });
  const port = first.port;
  let second;
  try {
    for (const transports of [['websocket'], ['polling']]) {
      // (each round restarts the gateway on the same port)
      const g = second || first;
      const s = client(port, '/', { transports, reconnectionDelay: 50, reconnectionDelayMax: 100 });
      await once(s, 'connect');
      assert.equal((await ack(s, 'echo', 1))[0], 1);
      const dropped = once(s, 'disconnect');
      const exit = g.stop('SIGTERM'); // drain: every connection is closed, then the process exits
      const [reason] = await dropped;
      assert.equal(reason, 'transport close', `${transports[0]}: a transport close, so the client retries`);
      assert.equal((await exit).code, 0);
      second = await startGateway({ policy: POLICY, listen: `127.0.0.1:${port}` });
      await once(s, 'connect', 15000);
      assert.equal((await ack(s, 'echo', 'back'))[0], 'back');
      s.disconnect();
    }
  } finally {
    await first.stop('SIGKILL');
    if (second) await second.stop('SIGKILL');
  }
});

test('drain with every kind of Socket.IO session open: all closed, clean exit', async () => {
  const g = await startGateway({ policy: POLICY });
  const a = await connect(g, '/', { transports: ['websocket'], reconnection: false });
  const b = await connect(g, '/', { transports: ['polling'], reconnection: false });
  const c = await connect(g, '/admin', { reconnection: false });
  // a session with no namespace, one in the middle of a binary packet, one mid-upgrade
  const hs = await (await fetch(eioUrl(g, 'EIO=4&transport=polling'))).text();
  const sid = JSON.parse(hs.slice(1)).sid;
  const half = rawWs(g);
  await half.next();
  half.send('40');
  await half.next();
  half.send('451-["echo",{"_placeholder":true,"num":0}]');
  const probe = rawWs(g, `EIO=4&transport=websocket&sid=${sid}`);
  await probe.opened;
  probe.send('2probe');
  assert.equal(await probe.next(), '3probe');
  const drops = [a, b, c].map((s) => once(s, 'disconnect'));
  const res = await g.stop('SIGTERM');
  assert.deepEqual(res, { code: 0, signal: null }, g.logs().slice(-3000));
  for (const [reason] of await Promise.all(drops)) assert.equal(reason, 'transport close');
});
