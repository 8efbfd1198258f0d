'use strict';
// The admin listener fails closed (issue 12, item 2): off loopback it needs a non-empty token
// or the gateway refuses to start; ADMIN_TOKEN / ADMIN_LISTEN are accepted (AIVO_ADMIN_TOKEN
// too); --admin-insecure is an explicit, loudly logged opt-out; loopback without a token is
// still allowed (the default).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startGateway, runGateway, freePort, delay } = require('./lib/gateway');

// every run starts from a shell with none of the admin variables
const CLEAN = { ADMIN_TOKEN: undefined, ADMIN_LISTEN: undefined, AIVO_ADMIN_TOKEN: undefined };

function adminGet(port, token) {
  return new Promise((resolve, reject) => {
    const headers = token ? { authorization: `Bearer ${token}` } : {};
    const req = http.get({ host: '127.0.0.1', port, path: '/admin/policy', headers, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

// The "admin API on" line follows "listening on" (which startGateway waited for).
async function adminPortOf(gw) {
  for (let i = 0; i < 100; i++) {
    const m = /info +admin API on [^ ]+:(\d+)/.exec(gw.logs());
    if (m) return Number(m[1]);
    await delay(50);
  }
  assert.fail(`no "admin API on" line in:\n${gw.logs()}`);
}

const REFUSAL = /refusing to start: the admin API would listen on 0\.0\.0\.0:\d+ \(from (--admin-listen|ADMIN_LISTEN)\) without a token/;

test('--admin-listen 0.0.0.0 without a token: refuses to start, exit 2, says what to do', async () => {
  const r = await runGateway(['--listen', '127.0.0.1:0', '--admin-listen', '0.0.0.0:0'], { env: CLEAN });
  assert.equal(r.code, 2);
  assert.match(r.stderr, REFUSAL);
  assert.match(r.stderr, /Set ADMIN_TOKEN/);
  assert.doesNotMatch(r.stderr, /listening on/);
});

test('ADMIN_LISTEN off loopback with an empty token (flag or variables) is refused too', async () => {
  for (const env of [
    { ...CLEAN, ADMIN_LISTEN: '0.0.0.0:0' },
    { ...CLEAN, ADMIN_LISTEN: '0.0.0.0:0', ADMIN_TOKEN: '' },
    { ...CLEAN, ADMIN_LISTEN: '0.0.0.0:0', AIVO_ADMIN_TOKEN: '' },
  ]) {
    const r = await runGateway(['--listen', '127.0.0.1:0'], { env });
    assert.equal(r.code, 2, JSON.stringify(env));
    assert.match(r.stderr, REFUSAL);
  }
  const r = await runGateway(['--listen', '127.0.0.1:0', '--admin-listen', '0.0.0.0:0', '--admin-token', ''], { env: CLEAN });
  assert.equal(r.code, 2);
  assert.match(r.stderr, REFUSAL);
});

test('ADMIN_TOKEN protects a non-loopback admin listener (ADMIN_LISTEN), AIVO_ADMIN_TOKEN is an alias', async () => {
  const port = await freePort();
  const gw = await startGateway({ env: { ...CLEAN, ADMIN_LISTEN: `0.0.0.0:${port}`, ADMIN_TOKEN: 'tok-from-env' } });
  try {
    assert.equal(await adminPortOf(gw), port);
    assert.match(gw.logs(), new RegExp(`admin API on 0\\.0\\.0\\.0:${port} \\(bearer token required\\)`));
    assert.equal(await adminGet(port, null), 401);
    assert.equal(await adminGet(port, 'wrong'), 401);
    assert.equal(await adminGet(port, 'tok-from-env'), 200);
  } finally {
    await gw.stop();
  }
  const gw2 = await startGateway({ args: ['--admin-listen', '0.0.0.0:0'], env: { ...CLEAN, AIVO_ADMIN_TOKEN: 'old-name' } });
  try {
    const p = await adminPortOf(gw2);
    assert.equal(await adminGet(p, null), 401);
    assert.equal(await adminGet(p, 'old-name'), 200);
  } finally {
    await gw2.stop();
  }
});

test('precedence: --admin-token > ADMIN_TOKEN > AIVO_ADMIN_TOKEN; --admin-listen > ADMIN_LISTEN', async () => {
  const gw = await startGateway({
    args: ['--admin-listen', '127.0.0.1:0', '--admin-token', 'from-flag'],
    env: { ...CLEAN, ADMIN_LISTEN: '0.0.0.0:1', ADMIN_TOKEN: 'from-admin', AIVO_ADMIN_TOKEN: 'from-aivo' },
  });
  try {
    const p = await adminPortOf(gw);
    assert.match(gw.logs(), /admin API on 127\.0\.0\.1:\d+/);
    assert.equal(await adminGet(p, 'from-admin'), 401);
    assert.equal(await adminGet(p, 'from-flag'), 200);
  } finally {
    await gw.stop();
  }
  const gw2 = await startGateway({
    args: ['--admin-listen', '127.0.0.1:0'],
    env: { ...CLEAN, ADMIN_TOKEN: 'from-admin', AIVO_ADMIN_TOKEN: 'from-aivo' },
  });
  try {
    const p = await adminPortOf(gw2);
    assert.equal(await adminGet(p, 'from-aivo'), 401);
    assert.equal(await adminGet(p, 'from-admin'), 200);
  } finally {
    await gw2.stop();
  }
});

test('loopback without a token is still allowed (the default listener, and an explicit one)', async () => {
  for (const args of [[], ['--admin-listen', '127.0.0.1:0'], ['--admin-listen', '[::1]:0']]) {
    let gw;
    try {
      gw = await startGateway({ args, env: CLEAN });
    } catch (err) {
      if (args[1] === '[::1]:0' && /::1/.test(err.message)) continue; // no IPv6 loopback here
      throw err;
    }
    try {
      if (args[1] === '[::1]:0') continue; // started: that is the point
      assert.equal(await adminGet(await adminPortOf(gw), null), 200);
    } finally {
      await gw.stop();
    }
  }
});

test('--admin-insecure opts out, loudly', async () => {
  const gw = await startGateway({ args: ['--admin-listen', '0.0.0.0:0', '--admin-insecure'], env: CLEAN });
  try {
    assert.match(gw.logs(), /warn .*--admin-insecure: the admin API on 0\.0\.0\.0:0 has NO token/);
    assert.equal(await adminGet(await adminPortOf(gw), null), 200);
  } finally {
    await gw.stop();
  }
});
