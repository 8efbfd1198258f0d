'use strict';
// Token expiry on live Socket.IO connections (docs/security.md, "Expiry on a live
// connection"), with the real socket.io-client: when a namespace's token expires the gateway
// emits `auth:refresh` {exp, grace} on that namespace; the client's
// socket.emit('auth:refresh', {token}) (with or without an ack) keeps it, and without a valid
// token for the same identity within auth.refresh_grace the namespace is disconnected by the
// server (a DISCONNECT packet: the client reports "io server disconnect"). Over websocket,
// long-polling and the default transports, and per namespace on a multiplexed connection.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, delay } = require('./lib/gateway');
const { SECRET, mintToken, manager, track, connect, once, ack, closeAll } = require('./lib/sio');
const { metrics } = require('./lib/traffic');

const GRACE = 1.5; // auth.refresh_grace, seconds
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-sio-auth-'));
// A token is required (the default); the identity is its sub. "whoami" tells the identity,
// and a plugin or hook that ever saw auth:refresh would say so with "leaked".
const POLICY = path.join(tmp, 'policy.lua');
fs.writeFileSync(POLICY, `
local gw = require "aivo"
return gw.policy {
  namespaces = { "/admin" },
  plugins = { "echo", "rooms" },
  message = function(conn, msg)
    if msg.event == "auth:refresh" then
      conn:emit("leaked", msg.data)
      return gw.DONE
    elseif msg.event == "whoami" then
      return gw.DONE, { user = conn.user, namespace = msg.namespace }
    end
  end,
}
`);

let gw;

before(async () => {
  gw = await startGateway({
    policy: POLICY,
    env: { JWT_SECRET: SECRET },
    set: [`auth.refresh_grace=${GRACE}`],
    args: ['--admin-listen', 'off'],
  });
});

// A graceful stop must exit 0: under an ASan build a leak would fail it here.
after(async () => {
  await closeAll();
  fs.rmSync(tmp, { recursive: true, force: true });
  if (gw) {
    const r = await gw.stop('SIGTERM');
    assert.equal(r.code, 0, `gateway exit ${JSON.stringify(r)}\n${gw.logs().slice(-3000)}`);
  }
});

const now = () => Math.floor(Date.now() / 1000);
const expOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).exp;

async function refreshTimeouts() {
  return (await metrics(gw.port)).get('aivo_auth_refusals_total{reason="refresh_timeout"}') || 0;
}

// Resolves with the reason of the next disconnect, and how long after `since` it came.
function disconnected(s, since, ms = 10000) {
  return once(s, 'disconnect', ms).then(([reason]) => ({ reason, after: Date.now() - since }));
}

const TRANSPORTS = [['websocket'], ['polling'], ['polling', 'websocket']];

for (const transports of TRANSPORTS) {
  const name = transports.join('+');

  test(`${name}: refreshed in time (with an ack): the namespace stays, with its identity`, async () => {
    const s = await connect(gw, '/', { transports, auth: { token: mintToken({ sub: 'stay', exp: now() + 2 }) } });
    const leaked = [];
    s.on('leaked', (d) => leaked.push(d));
    const [ask] = await once(s, 'auth:refresh', 6000);
    assert.equal(typeof ask.exp, 'number');
    assert.equal(ask.grace, GRACE);
    const fresh = mintToken({ sub: 'stay', exp: now() + 3600 });
    const [res] = await ack(s, 'auth:refresh', { token: fresh });
    assert.deepEqual(res, { ok: true, exp: expOf(fresh) });
    let gone = null;
    s.on('disconnect', (reason) => { gone = reason; });
    await delay(GRACE * 1000 + 1000); // past the grace period
    assert.equal(gone, null, 'still connected after the grace period');
    assert.ok(s.connected);
    const [me] = await ack(s, 'whoami');
    assert.deepEqual(me, { user: 'stay', namespace: '/' });
    const [echo] = await ack(s, 'echo', 'still here');
    assert.equal(echo, 'still here');
    assert.deepEqual(leaked, [], 'auth:refresh never reaches the policy or plugins');
    s.disconnect();
  });

  test(`${name}: not refreshed: "io server disconnect" once the grace period is over`, async () => {
    const before = await refreshTimeouts();
    const s = await connect(gw, '/', { transports, auth: { token: mintToken({ sub: 'lapse', exp: now() + 1 }) } });
    let reconnects = 0;
    s.io.on('reconnect_attempt', () => { reconnects++; });
    await once(s, 'auth:refresh', 6000);
    const { reason, after: waited } = await disconnected(s, Date.now());
    assert.equal(reason, 'io server disconnect');
    assert.ok(waited >= GRACE * 1000 - 500, `disconnected ${waited} ms after the request: not before the grace period`);
    assert.equal(await refreshTimeouts(), before + 1, 'counted as refresh_timeout');
    await delay(500);
    assert.equal(s.connected, false);
    assert.equal(reconnects, 0, 'a server disconnect: the client does not reconnect by itself');
  });
}

test('websocket: a refresh without an ack is enough, and may come before exp', async () => {
  const s = await connect(gw, '/', { transports: ['websocket'], auth: { token: mintToken({ sub: 'quiet', exp: now() + 2 }) } });
  const asked = [];
  s.on('auth:refresh', (d) => asked.push(d));
  const errors = [];
  s.on('error', (e) => errors.push(e));
  s.emit('auth:refresh', { token: mintToken({ sub: 'quiet', exp: now() + 3600 }) });
  let gone = null;
  s.on('disconnect', (reason) => { gone = reason; });
  await delay(2000 + GRACE * 1000 + 1000); // past the old exp and its grace period
  assert.equal(gone, null);
  assert.deepEqual(asked, [], 'no request for a token that is still valid');
  assert.deepEqual(errors, [], 'a good refresh without an ack is not answered');
  const [me] = await ack(s, 'whoami');
  assert.equal(me.user, 'quiet');
  s.disconnect();
});

test('websocket: a token for another identity, or an invalid one, is refused; then the disconnect', async () => {
  const s = await connect(gw, '/', { transports: ['websocket'], auth: { token: mintToken({ sub: 'me', exp: now() + 1 }) } });
  const gone = disconnected(s, Date.now(), 15000);
  await once(s, 'auth:refresh', 6000);
  const t0 = Date.now();
  let [res] = await ack(s, 'auth:refresh', { token: mintToken({ sub: 'someone-else' }) });
  assert.deepEqual(res, { ok: false, error: { code: 'unauthorized', message: 'identity_mismatch' } });
  [res] = await ack(s, 'auth:refresh', { token: mintToken({ sub: 'me', exp: now() - 3600 }) });
  assert.deepEqual(res, { ok: false, error: { code: 'unauthorized', message: 'token_expired' } });
  [res] = await ack(s, 'auth:refresh', { token: mintToken({ sub: 'me' }, 'another-secret-0123456789abcdef0123') });
  assert.deepEqual(res, { ok: false, error: { code: 'unauthorized', message: 'bad_signature' } });
  [res] = await ack(s, 'auth:refresh', {});
  assert.equal(res.ok, false);
  assert.equal(res.error.code, 'bad_request');
  // without an ack, a refusal comes as the "error" event
  const err = once(s, 'error');
  s.emit('auth:refresh', { token: mintToken({ sub: 'someone-else' }) });
  assert.deepEqual((await err)[0], { code: 'unauthorized', message: 'identity_mismatch' });
  const { reason } = await gone;
  assert.equal(reason, 'io server disconnect');
  assert.ok(Date.now() - t0 >= GRACE * 1000 - 500, 'the refused tokens did not end the grace period early');
});

for (const transports of [['websocket'], ['polling', 'websocket']]) {
  test(`${transports.join('+')}: per namespace: the one not refreshed goes, the other stays`, async () => {
    const m = manager(gw, { transports });
    const main = track(m.socket('/', { auth: { token: mintToken({ sub: 'multi', exp: now() + 2 }) } }));
    const admin = track(m.socket('/admin', { auth: { token: mintToken({ sub: 'multi', exp: now() + 2 }) } }));
    await Promise.all([once(main, 'connect'), once(admin, 'connect')]);
    const mainAsked = once(main, 'auth:refresh', 6000);
    await once(admin, 'auth:refresh', 6000); // on its own namespace
    await mainAsked;
    const fresh = mintToken({ sub: 'multi', exp: now() + 3600 });
    assert.deepEqual((await ack(main, 'auth:refresh', { token: fresh }))[0], { ok: true, exp: expOf(fresh) });
    let mainGone = null;
    main.on('disconnect', (reason) => { mainGone = reason; });
    const [reason] = await once(admin, 'disconnect', 10000);
    assert.equal(reason, 'io server disconnect');
    await delay(500);
    assert.equal(mainGone, null, 'the refreshed namespace stays');
    const [me] = await ack(main, 'whoami');
    assert.deepEqual(me, { user: 'multi', namespace: '/' });
    main.disconnect();
  });
}
