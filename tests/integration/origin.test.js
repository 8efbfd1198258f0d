'use strict';
// Browser origins (docs/security.md): a WebSocket upgrade whose Origin is not
// in origins.allowed (CORS_ORIGIN, default http://localhost:3000) is refused
// with HTTP 403 before the token is even looked at; requests without an Origin
// header (non-browser clients) are allowed unless origins.require is set.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startGateway, upgrade, runGateway } = require('./lib/gateway');

const gateways = [];
async function start(opts) {
  const g = await startGateway({ ...opts, args: ['--admin-listen', 'off', ...((opts && opts.args) || [])] });
  gateways.push(g);
  return g;
}
after(async () => { for (const g of gateways) await g.stop('SIGKILL'); });

function withOrigin(origin, extra = {}) {
  return { ...extra, wsOptions: { headers: origin === null ? {} : { origin } } };
}

async function expectAccepted(g, opts, what) {
  const r = await upgrade(g, opts);
  assert.ok(r.client, `${what}: refused with ${r.status} ${r.body || r.error}`);
  await r.client.close();
}

async function expectForbidden(g, opts, what) {
  const r = await upgrade(g, opts);
  if (r.client) await r.client.close();
  assert.equal(r.status, 403, `${what}: expected 403, got ${r.status || r.error}`);
  assert.deepEqual(r.json, { error: 'forbidden', reason: 'origin_not_allowed' }, what);
}

function metric(g, name) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: g.port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        const m = new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)`, 'm').exec(body);
        resolve(m ? Number(m[1]) : 0);
      });
    }).on('error', reject);
  });
}

test('default: http://localhost:3000 and clients without Origin connect, other origins get 403', async () => {
  const g = await start();
  await expectAccepted(g, withOrigin('http://localhost:3000'), 'the default origin');
  await expectAccepted(g, withOrigin(null), 'no Origin header');
  await expectForbidden(g, withOrigin('http://evil.example'), 'another origin');
  await expectForbidden(g, withOrigin('http://localhost:3001'), 'another port');
  await expectForbidden(g, withOrigin('https://localhost:3000'), 'another scheme');
  await expectForbidden(g, withOrigin('null'), 'the opaque origin');
  // an Origin too long for the gateway's buffer is refused, never taken as absent
  await expectForbidden(g, withOrigin(`https://${'a'.repeat(1100)}.example`), 'a very long origin');
  assert.equal(await metric(g, 'aivo_auth_refusals_total{reason="origin_not_allowed"}'), 5);
  assert.match(g.logs(), /origin 'http:\/\/evil\.example' is not in origins\.allowed/);
});

test('CORS_ORIGIN: a comma list replaces the default', async () => {
  const g = await start({ env: { CORS_ORIGIN: 'https://app.example.com, https://admin.example.com/' } });
  await expectAccepted(g, withOrigin('https://app.example.com'), 'first');
  await expectAccepted(g, withOrigin('https://ADMIN.example.com'), 'second, any case');
  await expectForbidden(g, withOrigin('http://localhost:3000'), 'the default is gone');
  await expectForbidden(g, withOrigin('https://app.example.com.evil.net'), 'a longer host');
});

test('the origin is checked before the token', async () => {
  const g = await start();
  await expectForbidden(g, withOrigin('http://evil.example'), 'a valid token from a bad origin');
  const r = await upgrade(g, withOrigin('http://localhost:3000', { token: null }));
  assert.equal(r.status, 401, 'a good origin without a token is a 401');
});

test('origins.require: no Origin header is refused too; * allows any origin', async () => {
  const g = await start({ set: ['origins.require=true'] });
  await expectForbidden(g, withOrigin(null), 'no Origin');
  await expectAccepted(g, withOrigin('http://localhost:3000'), 'a listed origin');
  const any = await start({ env: { CORS_ORIGIN: '*' } });
  await expectAccepted(any, withOrigin('https://anything.example'), 'any');
  // --set beats CORS_ORIGIN (command line > environment)
  const set = await start({ env: { CORS_ORIGIN: '*' }, set: ['origins.allowed=https://only.example'] });
  await expectForbidden(set, withOrigin('https://anything.example'), '--set over CORS_ORIGIN');
  await expectAccepted(set, withOrigin('https://only.example'), '--set value');
});

test('an origin that is not scheme://host refuses to start', async () => {
  const r = await runGateway(['--listen', '127.0.0.1:0'], { env: { CORS_ORIGIN: 'localhost:3000' } });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /origins\.allowed: 'localhost:3000' is not an origin/);
});
