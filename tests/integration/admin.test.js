'use strict';
// The admin API: its own listener (loopback), a bearer token when configured,
// policy status and reload, publish to a room or a user, disconnect, and
// nothing of it reachable on the public port.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { startGateway, clientPool, delay, httpRequest, REPO } = require('./lib/gateway');

const TOKEN = 'admin-test-token';
let gw;
let adminPort;
let dir;
const pool = clientPool();

// the admin token unless the test gives another (null: none)
const request = (port, method, p, opts = {}) =>
  httpRequest(port, method, p, { ...opts, token: opts.token === undefined ? TOKEN : opts.token });
const admin = (method, p, opts) => request(adminPort, method, p, opts);

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-admin-'));
  fs.copyFileSync(path.join(REPO, 'policies', 'default.lua'), path.join(dir, 'policy.lua'));
  gw = await startGateway({
    policy: path.join(dir, 'policy.lua'),
    args: ['--admin-listen', '127.0.0.1:0', '--admin-token', TOKEN, '--plugin-path', path.join(REPO, 'plugins')],
  });
  const t0 = Date.now();
  let m;
  while (!(m = /admin API on 127\.0\.0\.1:(\d+)/.exec(gw.logs())) && Date.now() - t0 < 5000) await delay(50);
  assert.ok(m, `no admin API line in the log:\n${gw.logs()}`);
  adminPort = Number(m[1]);
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the token is required: none or a wrong one is 401', async () => {
  assert.equal((await admin('GET', '/admin/policy', { token: null })).status, 401);
  assert.equal((await admin('GET', '/admin/policy', { token: 'admin-test-tokeX' })).status, 401);
  assert.equal((await admin('GET', '/admin/policy', { token: `${TOKEN}x` })).status, 401);
  assert.equal((await admin('GET', '/admin/policy')).status, 200);
});

test('the admin API is not reachable on the public listener', async () => {
  for (const p of ['/admin/policy', '/admin/reload', '/admin/connections']) {
    assert.equal((await request(gw.port, 'GET', p)).status, 404, p);
  }
});

test('GET /admin/policy tells the generation and plugins', async () => {
  const r = await admin('GET', '/admin/policy');
  assert.equal(r.status, 200);
  assert.equal(typeof r.json.generation, 'number');
  // one {name, version, path} per plugin, in call order
  assert.ok(Array.isArray(r.json.plugins), JSON.stringify(r.json.plugins));
  const echo = r.json.plugins.find((p) => p.name === 'echo');
  assert.ok(echo, JSON.stringify(r.json.plugins));
  assert.match(echo.version, /^\d+\.\d+\.\d+/);
  assert.equal(echo.path, path.join(REPO, 'plugins', 'echo.lua'));
  for (const p of r.json.plugins) assert.deepEqual(Object.keys(p), ['name', 'version', 'path']);
  assert.ok(r.json.path.endsWith('policy.lua'));
});

test('POST /admin/reload swaps the policy; a broken edit is 422 with file:line and keeps the old one', async () => {
  const file = path.join(dir, 'policy.lua');
  const good = fs.readFileSync(file, 'utf8');
  const before = (await admin('GET', '/admin/policy')).json.generation;
  const ok = await admin('POST', '/admin/reload');
  assert.equal(ok.status, 200);
  assert.ok(ok.json.generation > before);
  assert.equal(ok.json.last_reload.result, 'ok');

  const c = await pool.connect(gw);
  fs.writeFileSync(file, 'local x = = 1\n');
  const bad = await admin('POST', '/admin/reload');
  assert.equal(bad.status, 422);
  assert.equal(bad.json.last_reload.result, 'error');
  assert.ok(bad.json.last_reload.errors.some((e) => /policy\.lua:1:/.test(e)), JSON.stringify(bad.json));
  assert.equal(bad.json.generation, ok.json.generation, 'the old generation keeps serving');
  assert.equal((await c.request('echo', 'still served')).data, 'still served');
  fs.writeFileSync(file, good);
  await delay(600); // let the folder watch's own reload settle
  assert.equal((await admin('POST', '/admin/reload')).status, 200);
});

test('POST /admin/publish reaches a room and a user; bad input is 400', async () => {
  const a = await pool.connect(gw);
  const b = await pool.connect(gw);
  await a.request('join', { room: 'ops' });
  const r = await admin('POST', '/admin/publish', { body: { room: 'ops', event: 'notice', data: { n: 1 } } });
  assert.deepEqual(r.json, { delivered: 1, stored: false }); // rooms are not kept by default
  assert.deepEqual((await a.next('notice')).data, { n: 1 });

  // b's identity, from a room message it sends to a room it joined with a
  await b.request('join', { room: 'who' });
  await a.request('join', { room: 'who' });
  await b.request('room:send', { room: 'who', msg: 'hi' });
  const from = (await a.next('room:message')).data.from;
  const u = await admin('POST', '/admin/publish', { body: { user: from, event: 'direct', data: 'for b' } });
  // user channels are kept (docs/offline-replay.md): the answer says where
  assert.equal(u.json.delivered, 1);
  assert.equal(u.json.stored, true);
  assert.equal(typeof u.json.offset, 'number');
  const direct = await b.next('direct');
  assert.equal(direct.data, 'for b');
  assert.equal(direct.offset, u.json.offset);
  assert.equal(direct.epoch, u.json.epoch);

  for (const body of ['{nope', '[]', { event: 'x' }, { room: 'r', user: 'u', event: 'x' }, { room: 'r' }]) {
    const bad = await admin('POST', '/admin/publish', { body });
    assert.equal(bad.status, 400, JSON.stringify(body));
    assert.equal(bad.json.error.code, 'bad_request');
  }
});

test('POST /admin/disconnect closes one user\'s connections with the given code', async () => {
  const victim = await pool.connect(gw);
  const other = await pool.connect(gw);
  await victim.request('join', { room: 'd' });
  await other.request('join', { room: 'd' });
  await victim.request('room:send', { room: 'd', msg: 'x' });
  const user = (await other.next('room:message')).data.from;
  const r = await admin('POST', '/admin/disconnect', { body: { user, code: 4000, reason: 'bye' } });
  assert.deepEqual(r.json, { closed: 1 });
  const info = await victim.waitClose();
  assert.equal(info.code, 4000);
  assert.equal(info.reason, 'bye');
  assert.ok(other.open);
  assert.equal((await admin('POST', '/admin/disconnect', { body: { user, code: 99 } })).status, 400);
});

test('a chunked body (no Content-Length) is refused with 411, not misread', async () => {
  const r = await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: adminPort, method: 'POST', path: '/admin/publish',
      headers: { authorization: `Bearer ${TOKEN}` } }, (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', reject);
    req.write('{"room":"x","event":"y"}');
    req.end();
  });
  assert.equal(r, 411);
});

test('GET /admin/connections counts; unknown endpoints are 404, wrong methods 405', async () => {
  const r = await admin('GET', '/admin/connections');
  assert.equal(r.status, 200);
  assert.ok(r.json.connections >= 1);
  assert.equal((await admin('GET', '/admin/nope')).status, 404);
  assert.equal((await admin('GET', '/admin/reload')).status, 405);
  assert.equal((await admin('POST', '/admin/connections', { body: {} })).status, 405);
});
