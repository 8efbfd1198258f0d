'use strict';
// JWT authentication on the native /ws protocol, against the real binary
// (docs/security.md): every refusal is an HTTP 401 on the upgrade with the
// reason, counted in aivo_auth_refusals_total{reason} and logged without the
// token. Tokens and keys are made here with node:crypto (HS256, RS256, ES256),
// so each check is also a cross-implementation check of the gateway's
// verification. Also: the three token sources, the learnerId rule of the
// default policy, refusal to start without a key, --dev-secret with
// `aivo-gw token`, and the refresh flow on a live connection.

const { test, before, after, describe } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const {
  startGateway, runGateway, clientPool, upgrade, mintToken, TEST_SECRET, delay,
} = require('./lib/gateway');

const pool = clientPool();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-auth-'));
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const RSA_PUB = rsa.publicKey.export({ type: 'spki', format: 'pem' });
fs.writeFileSync(path.join(tmp, 'rsa.pub'), RSA_PUB);
fs.writeFileSync(path.join(tmp, 'ec.pub'), ec.publicKey.export({ type: 'spki', format: 'pem' }));

// The default policy's auth rule, plus two public keys (RS256, ES256) by kid.
const KEYS_POLICY = path.join(tmp, 'keys.lua');
fs.writeFileSync(KEYS_POLICY, `
local gw = require "aivo"
return gw.policy {
  config = { auth = { keys = {
    { kid = "rsa-1", alg = "RS256", file = ${JSON.stringify(path.join(tmp, 'rsa.pub'))} },
    { kid = "ec-1", alg = "ES256", file = ${JSON.stringify(path.join(tmp, 'ec.pub'))} },
  } } },
  plugins = { "echo", "rooms" },
}
`);

// The auth and connect hooks run at the upgrade, before the handshake is
// answered: what they send must still arrive, after the handshake, in order.
const HOOKS_POLICY = path.join(tmp, 'hooks.lua');
fs.writeFileSync(HOOKS_POLICY, `
local gw = require "aivo"
return gw.policy {
  plugins = { "echo" },
  auth = function(claims, req)
    if claims.role == "blocked" then return false, "blocked_role", "not with that role" end
    return true, "u:" .. claims.sub
  end,
  connect = function(conn, req)
    if req.headers["x-forwarded-for"] == "10.6.6.6" then return false, "banned", "go away" end
    conn:emit("welcome", { user = req.user, learner = req.auth.learnerId, query = req.query,
                           host = req.headers.host, sub = req.claims.sub })
    conn:emit("second", 2)
    return true
  end,
}
`);

let gw;
let keysGw;

before(async () => {
  gw = await startGateway({ args: ['--admin-listen', 'off'] });
  keysGw = await startGateway({ policy: KEYS_POLICY, args: ['--admin-listen', 'off'] });
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
  if (keysGw) await keysGw.stop('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

const now = () => Math.floor(Date.now() / 1000);

function metrics(g) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: g.port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

async function refusals(g, reason) {
  const m = new RegExp(`^aivo_auth_refusals_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(await metrics(g));
  return m ? Number(m[1]) : 0;
}

// The upgrade must be refused with 401 and this reason, and counted.
async function assertRefused(g, opts, reason, what) {
  const before = await refusals(g, reason);
  const r = await upgrade(g, opts);
  if (r.client) await r.client.close();
  assert.equal(r.status, 401, `${what}: expected HTTP 401, got ${r.status || r.error}`);
  assert.deepEqual(r.json, { error: 'unauthorized', reason }, `${what}: body ${r.body}`);
  assert.match(r.headers['www-authenticate'], /^Bearer error="invalid_(token|request)"/, what);
  assert.equal(await refusals(g, reason), before + 1, `${what}: aivo_auth_refusals_total{reason="${reason}"}`);
}

async function assertAccepted(g, opts, what) {
  const r = await upgrade(g, opts);
  assert.ok(r.client, `${what}: refused with ${r.status} ${r.body || r.error}`);
  return r.client;
}

// A connection's identity, as another member of a room sees it.
async function identityOf(g, client, observerOpts) {
  const observer = await pool.connect(g, observerOpts);
  const room = `who-${crypto.randomUUID()}`;
  assert.deepEqual((await client.request('join', { room })).data, { ok: true, room });
  assert.deepEqual((await observer.request('join', { room })).data, { ok: true, room });
  await client.request('room:send', { room, msg: 'whoami' });
  return (await observer.next('room:message')).data.from;
}

// Swaps the payload of a signed token for another (signature kept).
function withPayload(token, payload) {
  const [h, , s] = token.split('.');
  return `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
}

describe('valid tokens', () => {
  test('HS256 in an Authorization: Bearer header: the identity is its sub', async () => {
    const c = await assertAccepted(gw, { token: mintToken({ sub: 'alice' }) }, 'bearer');
    assert.equal(await identityOf(gw, c), 'alice');
    assert.equal((await c.request('echo', 'hi')).data, 'hi');
    await c.close();
  });

  test('?token= in the query, and the configured cookie', async () => {
    const c = await assertAccepted(gw, { token: null, path: `/ws?token=${mintToken({ sub: 'q-user' })}` }, 'query');
    assert.equal(await identityOf(gw, c), 'q-user');
    await c.close();
    // no cookie is read unless auth.cookie names one
    await assertRefused(gw, { token: null, wsOptions: { headers: { cookie: `aivo_token=${mintToken()}` } } },
      'token_missing', 'cookie without auth.cookie');
    const g = await startGateway({ set: ['auth.cookie=aivo_token', 'auth.query=false'], args: ['--admin-listen', 'off'] });
    try {
      const k = await assertAccepted(g, {
        token: null, wsOptions: { headers: { cookie: `theme=dark; aivo_token=${mintToken({ sub: 'cookie-user' })}; x=1` } },
      }, 'cookie');
      assert.equal(await identityOf(g, k), 'cookie-user');
      await k.close();
      // auth.query = false: a token in the URL is ignored
      await assertRefused(g, { token: null, path: `/ws?token=${mintToken()}` }, 'token_missing', 'query off');
    } finally {
      await g.stop('SIGKILL');
    }
  });

  test('RS256 and ES256 tokens signed by node verify against public keys selected by kid', async () => {
    const r = await assertAccepted(keysGw, { token: mintToken({ sub: 'rs' }, { alg: 'RS256', key: rsa.privateKey, kid: 'rsa-1' }) }, 'RS256');
    assert.equal(await identityOf(keysGw, r), 'rs');
    const e = await assertAccepted(keysGw, { token: mintToken({ sub: 'es' }, { alg: 'ES256', key: ec.privateKey, kid: 'ec-1' }) }, 'ES256');
    assert.equal(await identityOf(keysGw, e), 'es');
    await r.close();
    await e.close();
    // JWT_SECRET still verifies tokens without a kid beside them
    const h = await assertAccepted(keysGw, {}, 'HS256 without kid');
    await h.close();
  });

  test('exp inside the 30 s leeway, nbf inside the leeway, and no exp at all are accepted', async () => {
    for (const [claims, what] of [
      [{ exp: now() - 20 }, 'exp 20 s ago'],
      [{ nbf: now() + 20 }, 'nbf in 20 s'],
      [{ exp: undefined }, 'no exp'],
      [{ exp: now() + 600.5 }, 'fractional exp'],
    ]) {
      const c = await assertAccepted(gw, { claims }, what);
      await c.close();
    }
  });
});

describe('refused tokens: HTTP 401 with the reason', () => {
  test('no token at all', async () => {
    await assertRefused(gw, { token: null }, 'token_missing', 'no token');
    await assertRefused(gw, { token: null, wsOptions: { headers: { authorization: 'Basic dXNlcjpwdw==' } } },
      'token_missing', 'Basic auth');
  });

  test('expired, and nbf in the future (leeway edges)', async () => {
    await assertRefused(gw, { claims: { exp: now() - 40 } }, 'token_expired', 'exp 40 s ago');
    await assertRefused(gw, { claims: { exp: now() - 3600 } }, 'token_expired', 'exp an hour ago');
    await assertRefused(gw, { claims: { nbf: now() + 40 } }, 'token_not_yet_valid', 'nbf in 40 s');
    // and with auth.leeway = 0 the 20 s that passed above no longer do
    const g = await startGateway({ set: ['auth.leeway=0'], args: ['--admin-listen', 'off'] });
    try {
      await assertRefused(g, { claims: { exp: now() - 20 } }, 'token_expired', 'leeway 0');
    } finally {
      await g.stop('SIGKILL');
    }
  });

  test('alg none, and HS512 where HS256 is pinned', async () => {
    await assertRefused(gw, { token: mintToken({}, { alg: 'none' }) }, 'alg_not_allowed', 'alg none');
    await assertRefused(gw, { token: mintToken({}, { alg: 'HS512' }) }, 'alg_not_allowed', 'HS512');
    await assertRefused(gw, { token: mintToken({}, { alg: 'HS384' }) }, 'alg_not_allowed', 'HS384');
  });

  test('an RS256 public key used as an HS256 secret (algorithm confusion)', async () => {
    // Anyone holding the public key can sign this; libjwt alone would accept it.
    await assertRefused(keysGw, { token: mintToken({ sub: 'mallory' }, { alg: 'HS256', secret: RSA_PUB, kid: 'rsa-1' }) },
      'alg_not_allowed', 'HS256 with the RSA PEM as secret');
    // and ES256 under the RSA key's kid
    await assertRefused(keysGw, { token: mintToken({}, { alg: 'ES256', key: ec.privateKey, kid: 'rsa-1' }) },
      'alg_not_allowed', 'ES256 under an RS256 kid');
  });

  test('unknown kid, another secret, tampered payload, tampered signature, garbage', async () => {
    await assertRefused(keysGw, { token: mintToken({}, { alg: 'RS256', key: rsa.privateKey, kid: 'rsa-0' }) },
      'unknown_kid', 'unknown kid');
    await assertRefused(gw, { token: mintToken({}, { secret: 'not-the-gateway-secret' }) }, 'bad_signature', 'other secret');
    const good = mintToken({ sub: 'bob' });
    await assertRefused(gw, { token: withPayload(good, { sub: 'admin', exp: now() + 3600 }) }, 'bad_signature', 'payload');
    const sig = good.split('.')[2];
    const flipped = `${good.slice(0, good.length - sig.length)}${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
    await assertRefused(gw, { token: flipped }, 'bad_signature', 'signature');
    await assertRefused(gw, { token: good.split('.').slice(0, 2).join('.') + '.' }, 'bad_signature', 'no signature');
    await assertRefused(gw, { token: 'garbage' }, 'token_malformed', 'garbage');
    await assertRefused(gw, { token: 'a.b.c' }, 'token_malformed', 'three garbage parts');
  });

  test('a string exp is not a number: refused, not read as 0', async () => {
    await assertRefused(gw, { claims: { exp: String(now() + 3600) } }, 'bad_claims', 'string exp');
    await assertRefused(gw, { claims: { nbf: 'yesterday' } }, 'bad_claims', 'string nbf');
  });

  test('refusals are logged with their reason, never with the token', async () => {
    const secretish = mintToken({ sub: 'leaky', exp: now() - 999 });
    await assertRefused(gw, { token: secretish }, 'token_expired', 'expired');
    const logs = gw.logs();
    assert.match(logs, /unauthorized: token_expired \(expired \d+ s ago/);
    assert.ok(!logs.includes(secretish.split('.')[2]), 'the log must not contain the token');
    assert.ok(!logs.includes(secretish.split('.')[1]), 'the log must not contain the token');
  });
});

describe('the hooks at the upgrade', () => {
  test('auth names the connection, connect sees req.user, req.auth and claims; what they send arrives', async () => {
    const g = await startGateway({ policy: HOOKS_POLICY, args: ['--admin-listen', 'off'] });
    try {
      const tok = mintToken({ sub: 'carol' });
      const c = await assertAccepted(g, { token: null, path: `/ws?learnerId=l-7&x=1&token=${tok}` }, 'query token');
      const w = await c.next('welcome');
      assert.equal(w.data.user, 'u:carol');
      assert.equal(w.data.sub, 'carol');
      assert.equal(w.data.learner, 'l-7');
      assert.equal(w.data.query, 'learnerId=l-7&x=1', 'the token is not shown to the policy');
      assert.equal(w.data.host, `127.0.0.1:${g.port}`);
      assert.equal((await c.next('second')).data, 2);
      assert.equal((await c.request('echo', 'x')).data, 'x');
      await c.close();
      // the auth hook's refusal: 401 with its code; the connect hook's: 403
      await assertRefused(g, { claims: { role: 'blocked' } }, 'blocked_role', 'auth hook');
      const r = await upgrade(g, { wsOptions: { headers: { 'x-forwarded-for': '10.6.6.6' } } });
      assert.equal(r.status, 403);
      assert.deepEqual(r.json, { error: 'forbidden', reason: 'banned: go away' });
      assert.ok(!g.logs().includes(tok.split('.')[2]), 'the token is not logged');
    } finally {
      await g.stop('SIGKILL');
    }
  });
});

describe('key rotation', () => {
  test('a new kid added by a reload verifies; a reload with a bad key keeps the running keys', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'rot-'));
    const policy = path.join(dir, 'rot.lua');
    const write = (keys) => fs.writeFileSync(policy, `local gw = require "aivo"
return gw.policy { config = { auth = { keys = { ${keys} } } }, plugins = { "echo" } }`);
    const entry = (kid, file) => `{ kid = "${kid}", alg = "RS256", file = ${JSON.stringify(file)} },`;
    const next = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    fs.writeFileSync(path.join(dir, 'old.pub'), RSA_PUB);
    fs.writeFileSync(path.join(dir, 'new.pub'), next.publicKey.export({ type: 'spki', format: 'pem' }));
    write(entry('old', path.join(dir, 'old.pub')));
    const g = await startGateway({ policy, args: ['--admin-listen', 'off'] });
    try {
      const oldTok = () => mintToken({}, { alg: 'RS256', key: rsa.privateKey, kid: 'old' });
      const newTok = () => mintToken({}, { alg: 'RS256', key: next.privateKey, kid: 'new' });
      const live = await assertAccepted(g, { token: oldTok() }, 'old kid');
      await assertRefused(g, { token: newTok() }, 'unknown_kid', 'new kid before the reload');

      write(entry('old', path.join(dir, 'old.pub')) + entry('new', path.join(dir, 'new.pub')));
      process.kill(g.proc.pid, 'SIGHUP');
      for (let i = 0; i < 100 && !/generation 2/.test(g.logs()); i++) await delay(50);
      (await assertAccepted(g, { token: newTok() }, 'new kid after the reload')).close();
      (await assertAccepted(g, { token: oldTok() }, 'old kid still')).close();

      // a broken key file: the reload is refused, naming it; the running keys stay
      write(entry('new', path.join(dir, 'missing.pub')));
      process.kill(g.proc.pid, 'SIGHUP');
      for (let i = 0; i < 100 && !/reload \(SIGHUP\) failed/.test(g.logs()); i++) await delay(50);
      assert.match(g.logs(), /missing\.pub: cannot read/);
      (await assertAccepted(g, { token: oldTok() }, 'old kid after a failed reload')).close();
      assert.equal((await live.request('echo', 'alive')).data, 'alive', 'connections are untouched');
      await live.close();
    } finally {
      await g.stop('SIGKILL');
    }
  });
});

describe('the default policy: learnerId', () => {
  test('a learnerId the client names must be the token\'s (claim, else sub)', async () => {
    const tok = mintToken({ sub: 'u-1', learnerId: 'l-1' });
    const ok = await assertAccepted(gw, { token: tok, path: '/ws?learnerId=l-1' }, 'matching claim');
    assert.equal(await identityOf(gw, ok), 'u-1');
    await ok.close();
    await assertRefused(gw, { token: tok, path: '/ws?learnerId=l-2' }, 'learner_mismatch', 'other learner');
    const subOnly = mintToken({ sub: 'u-2' });
    const ok2 = await assertAccepted(gw, { token: subOnly, path: '/ws?learnerId=u-2' }, 'sub as learner');
    await ok2.close();
    await assertRefused(gw, { token: subOnly, path: '/ws?learnerId=u-3' }, 'learner_mismatch', 'sub mismatch');
    await assertRefused(gw, { claims: { sub: undefined } }, 'invalid_claims', 'no sub');
  });
});

describe('Socket.IO: the same checks, refused with CONNECT_ERROR unauthorized', () => {
  // lib/sio.js drives the real socket.io-client; the gateways here use TEST_SECRET.
  const sio = require('./lib/sio');
  after(() => sio.closeAll());

  test('the libjwt traps and claim checks, over websocket and polling', async () => {
    const cases = [
      [gw, mintToken({}, { alg: 'none' }), 'alg_not_allowed'],
      [gw, mintToken({}, { alg: 'HS512' }), 'alg_not_allowed'],
      [keysGw, mintToken({}, { alg: 'HS256', secret: RSA_PUB, kid: 'rsa-1' }), 'alg_not_allowed'],
      [keysGw, mintToken({}, { alg: 'RS256', key: rsa.privateKey, kid: 'nope' }), 'unknown_kid'],
      [gw, withPayload(mintToken({ sub: 'bob' }), { sub: 'admin' }), 'bad_signature'],
      [gw, mintToken({ exp: String(now() + 3600) }), 'bad_claims'],
      [gw, mintToken({ exp: now() - 40 }), 'token_expired'],
      [gw, mintToken({ nbf: now() + 40 }), 'token_not_yet_valid'],
      [gw, 'garbage', 'token_malformed'],
    ];
    for (const [g, token, reason] of cases) {
      for (const transports of [['websocket'], ['polling']]) {
        const err = await sio.connectError(g, '/', { transports, auth: { token } });
        assert.equal(err.message, 'unauthorized', `${reason} over ${transports[0]}`);
        assert.deepEqual(err.data, { reason }, `${reason} over ${transports[0]}`);
      }
    }
  });

  test('valid HS256, RS256 and ES256 tokens connect; learnerId is checked', async () => {
    for (const [g, token] of [
      [gw, mintToken({ sub: 's1', learnerId: 'l1' })],
      [keysGw, mintToken({ sub: 's2' }, { alg: 'RS256', key: rsa.privateKey, kid: 'rsa-1' })],
      [keysGw, mintToken({ sub: 's3' }, { alg: 'ES256', key: ec.privateKey, kid: 'ec-1' })],
    ]) {
      const s = await sio.connect(g, '/', { transports: ['websocket'], auth: { token } });
      const [res] = await sio.ack(s, 'echo', 'ok');
      assert.equal(res, 'ok');
      s.disconnect();
    }
    const err = await sio.connectError(gw, '/', {
      transports: ['websocket'], auth: { token: mintToken({ sub: 's1', learnerId: 'l1' }), learnerId: 'l2' },
    });
    assert.deepEqual(err.data, { reason: 'learner_mismatch' });
  });
});

describe('starting without a usable key', () => {
  test('an empty JWT_SECRET refuses to start, naming it', async () => {
    const r = await runGateway(['--listen', '127.0.0.1:0'], { env: { JWT_SECRET: '' } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /JWT_SECRET is set but empty/);
    assert.doesNotMatch(r.stderr, /listening on/);
    const n = await runGateway(['--listen', '127.0.0.1:0'], { env: { JWT_SECRET: undefined, NEXTAUTH_SECRET: '' } });
    assert.equal(n.code, 1, n.stderr);
    assert.match(n.stderr, /NEXTAUTH_SECRET is set but empty/);
  });

  test('no key at all refuses to start and says which settings to use', async () => {
    const r = await runGateway(['--listen', '127.0.0.1:0'], { env: { JWT_SECRET: undefined } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /auth\.required is on but no key is configured: set JWT_SECRET \(or NEXTAUTH_SECRET\)/);
    assert.match(r.stderr, /--dev-secret/);
    // --check validates the policy: a missing key is a warning there (issue 11), not a failure
    const c = await runGateway(['--check'], { env: { JWT_SECRET: undefined } });
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stderr, /warn .*no JWT key is configured/);
  });

  test('NEXTAUTH_SECRET (the old service\'s name) works as the key', async () => {
    const secret = crypto.randomBytes(32).toString('hex');
    const g = await startGateway({ env: { JWT_SECRET: undefined, NEXTAUTH_SECRET: secret }, args: ['--admin-listen', 'off'] });
    try {
      const c = await assertAccepted(g, { token: mintToken({ sub: 'na' }, { secret }) }, 'NEXTAUTH_SECRET');
      await c.close();
      await assertRefused(g, {}, 'bad_signature', 'a TEST_SECRET token');
    } finally {
      await g.stop('SIGKILL');
    }
  });

  test('a PEM public key given as the HMAC secret refuses to start', async () => {
    const r = await runGateway(['--listen', '127.0.0.1:0'], { env: { JWT_SECRET: RSA_PUB } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /is a PEM key/);
  });
});

describe('--dev-secret and aivo-gw token', () => {
  test('a fresh machine: the development secret is made, announced loudly, and tokens minted with it work', async () => {
    const devFile = path.join(tmp, 'state', 'dev-secret');
    const env = { JWT_SECRET: undefined, AIVO_DEV_SECRET_FILE: devFile };
    const none = await runGateway(['token', '--sub', 'alice'], { env });
    assert.equal(none.code, 1, 'no key yet');
    assert.match(none.stderr, /no key: set JWT_SECRET/);

    const g = await startGateway({ env, args: ['--dev-secret', '--admin-listen', 'off'] });
    try {
      assert.match(g.logs(), /using a DEVELOPMENT SECRET/);
      assert.match(g.logs(), /token --sub alice/);
      assert.equal(fs.statSync(devFile).mode & 0o777, 0o600);
      const t = await runGateway(['token', '--sub', 'alice', '--claim', 'learnerId=l-9', '--ttl', '15m'], { env });
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stderr, /DEVELOPMENT secret/);
      const token = t.stdout.trim();
      const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
      assert.equal(claims.sub, 'alice');
      assert.equal(claims.learnerId, 'l-9');
      assert.equal(claims.exp - claims.iat, 900);
      const c = await assertAccepted(g, { token: null, path: `/ws?token=${token}&learnerId=l-9` }, 'dev token');
      assert.equal(await identityOf(g, c, { token }), 'alice');
      await c.close();
      // a TEST_SECRET token does not verify: the dev secret is the only key
      await assertRefused(g, {}, 'bad_signature', 'other secret');
    } finally {
      await g.stop('SIGKILL');
    }
  });

  test('aivo-gw token signs with JWT_SECRET; --claim k:=JSON, --ttl 0, usage errors', async () => {
    const t = await runGateway(['token', '--sub', 'bob', '--claim', 'admin:=true', '--claim', 'aud:=["a","b"]', '--ttl', '0']);
    assert.equal(t.code, 0, t.stderr);
    const [h, p, s] = t.stdout.trim().split('.');
    assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url')), { alg: 'HS256', typ: 'JWT' });
    const claims = JSON.parse(Buffer.from(p, 'base64url'));
    assert.equal(claims.admin, true);
    assert.deepEqual(claims.aud, ['a', 'b']);
    assert.equal(claims.exp, undefined);
    const expect = crypto.createHmac('sha256', TEST_SECRET).update(`${h}.${p}`).digest('base64url');
    assert.equal(s, expect, 'signed with JWT_SECRET');
    const c = await assertAccepted(gw, { token: t.stdout.trim() }, 'minted token');
    await c.close();

    for (const argv of [['token'], ['token', '--sub', 'x', '--ttl', '1y'], ['token', '--sub', 'x', '--alg', 'RS256'],
      ['token', '--sub', 'x', '--claim', 'novalue'], ['token', '--sub', 'x', '--claim', 'exp=1'], ['token', '--bogus']]) {
      const r = await runGateway(argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /aivo-gw token: /);
    }
    const bad = await runGateway(['token', '--sub', 'x', '--claim', 'n:={not json']);
    assert.equal(bad.code, 2, bad.stderr);
  });
});

describe('token expiry on a live connection', () => {
  let g;
  before(async () => {
    g = await startGateway({ set: ['auth.refresh_grace=1.5'], args: ['--admin-listen', 'off'] });
  });
  after(async () => { if (g) await g.stop('SIGKILL'); });

  test('refreshed in time: the connection stays and keeps its identity', async () => {
    const c = await assertAccepted(g, { claims: { sub: 'stay', exp: now() + 2 } }, 'short token');
    const ask = await c.next('auth:refresh', { timeout: 5000 });
    assert.equal(typeof ask.data.exp, 'number');
    assert.equal(ask.data.grace, 1.5);
    const fresh = mintToken({ sub: 'stay', exp: now() + 3600 });
    const ack = await c.request('auth:refresh', { token: fresh });
    assert.equal(ack.error, undefined, JSON.stringify(ack));
    assert.deepEqual(ack.data, { ok: true, exp: JSON.parse(Buffer.from(fresh.split('.')[1], 'base64url')).exp });
    await delay(2500); // past the grace period
    assert.ok(c.open, 'still open after the grace period');
    assert.equal((await c.request('echo', 'still here')).data, 'still here');
    assert.equal(await identityOf(g, c), 'stay');
    await c.close();
  });

  test('a refresh before exp moves the deadline too', async () => {
    const c = await assertAccepted(g, { claims: { sub: 'early', exp: now() + 2 } }, 'short token');
    const ack = await c.request('auth:refresh', { token: mintToken({ sub: 'early', exp: now() + 3600 }) });
    assert.deepEqual(ack.data.ok, true);
    await delay(4000);
    assert.ok(c.open);
    assert.deepEqual(c.events('auth:refresh'), [], 'no request for a token that is still valid');
    await c.close();
  });

  test('not refreshed: closed with 4401 after the grace period', async () => {
    const before = await refusals(g, 'refresh_timeout');
    const c = await assertAccepted(g, { claims: { sub: 'lapse', exp: now() + 1 } }, 'short token');
    await c.next('auth:refresh', { timeout: 5000 });
    const t0 = Date.now();
    const closed = await c.waitClose(5000);
    assert.equal(closed.code, 4401);
    assert.equal(closed.reason, 'token expired');
    assert.ok(Date.now() - t0 >= 1000, 'not before the grace period');
    assert.equal(await refusals(g, 'refresh_timeout'), before + 1);
  });

  test('a token for another identity, or an invalid one, does not count', async () => {
    const c = await assertAccepted(g, { claims: { sub: 'me', exp: now() + 1 } }, 'short token');
    await c.next('auth:refresh', { timeout: 5000 });
    let ack = await c.request('auth:refresh', { token: mintToken({ sub: 'someone-else' }) });
    assert.deepEqual(ack.error, { code: 'unauthorized', message: 'identity_mismatch' });
    ack = await c.request('auth:refresh', { token: mintToken({ sub: 'me', exp: now() - 3600 }) });
    assert.deepEqual(ack.error, { code: 'unauthorized', message: 'token_expired' });
    ack = await c.request('auth:refresh', { token: mintToken({ sub: 'me' }, { alg: 'HS512' }) });
    assert.deepEqual(ack.error, { code: 'unauthorized', message: 'alg_not_allowed' });
    ack = await c.request('auth:refresh', {});
    assert.equal(ack.error.code, 'bad_request');
    const closed = await c.waitClose(5000);
    assert.equal(closed.code, 4401);
  });
});
