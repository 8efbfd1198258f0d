'use strict';
// TLS (docs/security.md): https and wss on the gateway's port with a
// certificate this test makes with the openssl CLI; TLS 1.2 at least; a
// missing, unreadable, expired, not-yet-valid or mismatched certificate or key
// refuses to start naming the file (never a fall-back to plain HTTP); SIGHUP
// reloads the certificate without dropping connections, and a bad new one
// keeps the old.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const { execFileSync } = require('node:child_process');
const { startGateway, runGateway, connect, upgrade, delay, mintToken } = require('./lib/gateway');
const { OP, connectRaw } = require('./lib/wsraw');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-tls-'));
const f = (name) => path.join(dir, name);

function openssl(args, cwd = dir) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

// A self-signed certificate for 127.0.0.1/localhost: name.crt and name.key.
function selfSigned(name, cn, keyArgs = ['-newkey', 'rsa:2048']) {
  openssl(['req', '-x509', ...keyArgs, '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`),
    '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
}

// A certificate valid only between two dates (openssl ca can set them).
function dated(name, start, end) {
  const ca = f(`ca-${name}`);
  fs.mkdirSync(ca);
  fs.writeFileSync(path.join(ca, 'index.txt'), '');
  fs.writeFileSync(path.join(ca, 'serial'), '01\n');
  fs.writeFileSync(path.join(ca, 'ca.cnf'),
    '[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n' +
    'default_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n');
  openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`),
    '-subj', `/CN=${name}`]);
  openssl(['ca', '-batch', '-config', 'ca.cnf', '-selfsign', '-keyfile', f(`${name}.key`), '-in', f(`${name}.csr`),
    '-out', f(`${name}.crt`), '-startdate', start, '-enddate', end], ca);
}

const gateways = [];
async function start(cert, key, opts = {}) {
  const g = await startGateway({ ...opts, args: ['--tls-cert', cert, '--tls-key', key, ...(opts.args || ['--admin-listen', 'off'])] });
  gateways.push(g);
  return g;
}

before(() => {
  selfSigned('first', 'first.test');
  selfSigned('second', 'second.test', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']);
  selfSigned('other', 'other.test');
  dated('expired', '20200101000000Z', '20200102000000Z');
  dated('future', '20990101000000Z', '20990102000000Z');
  fs.writeFileSync(f('garbage.crt'), 'this is not a certificate\n');
});

after(async () => {
  for (const g of gateways) await g.stop('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

// The certificate a new TLS handshake is served, and the protocol it used.
function handshake(port, options = {}) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options }, () => {
      const cert = s.getPeerCertificate();
      const out = { cn: cert.subject && cert.subject.CN, protocol: s.getProtocol() };
      s.end();
      resolve(out);
    });
    s.on('error', (error) => resolve({ error }));
  });
}

function httpsGet(port, p, ca) {
  return new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path: p, ca }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}

test('wss echo with a generated certificate, verified against it as the CA', async () => {
  const g = await start(f('first.crt'), f('first.key'));
  assert.match(g.logs(), /TLS on \(TLS 1\.2\+\): .*CN ?= ?first\.test.*expires/);
  const ca = fs.readFileSync(f('first.crt'));
  const c = await connect(g, { secure: true, wsOptions: { ca } });
  assert.equal((await c.request('echo', { over: 'tls' })).data.over, 'tls');
  await c.close();
  const loose = await connect(g, { secure: true, wsOptions: { rejectUnauthorized: false } });
  assert.equal((await loose.request('echo', 1)).data, 1);
  await loose.close();
  // https on the same port
  assert.deepEqual(await httpsGet(g.port, '/healthz', ca), { status: 200, body: 'ok\n' });
  // auth still applies over TLS
  const r = await upgrade(g, { secure: true, token: null, wsOptions: { ca } });
  assert.equal(r.status, 401);
});

test('over TLS an unmasked client frame closes 1002 (RFC 6455 5.1), a masked one before it is answered', async () => {
  const g = await start(f('first.crt'), f('first.key'));
  const c = await connectRaw(g.port, '/ws', { Authorization: `Bearer ${mintToken()}` }, 5000, { secure: true });
  c.send({ opcode: OP.TEXT, payload: JSON.stringify({ event: 'echo', data: 'masked', id: 1 }) });
  const first = await c.nextMessage(4000);
  assert.equal(first && first.type, 'text');
  assert.equal(first.json.data, 'masked');
  c.send({ opcode: OP.TEXT, payload: JSON.stringify({ event: 'echo', data: 'bare', id: 2 }), mask: false });
  for (;;) { // connection:quality events may come in between; the bare echo must not
    const m = await c.nextMessage(4000);
    assert.ok(m, 'expected a close 1002, got nothing');
    if (m.type === 'close') break;
    assert.ok(!(m.json && m.json.ack === 2), `the unmasked message was handled: ${m.data}`);
  }
  assert.equal(c.closeFrame.code, 1002);
  c.sock.destroy();
});

test('plain ws:// on the TLS port is not served; TLS 1.1 is refused, 1.2 and 1.3 work', async () => {
  const g = await start(f('first.crt'), f('first.key'));
  await assert.rejects(connect(g, { timeout: 3000 }));
  assert.equal((await handshake(g.port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
  assert.equal((await handshake(g.port, { minVersion: 'TLSv1.3' })).protocol, 'TLSv1.3');
  const old = await handshake(g.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
  assert.ok(old.error, `TLS 1.1 was accepted (${old.protocol})`);
  // the server's alert (this client can speak TLS 1.1: checked against openssl s_server -tls1_1)
  assert.match(String(old.error.code), /ALERT_PROTOCOL_VERSION/);
  // the gateway goes on
  const c = await connect(g, { secure: true, wsOptions: { rejectUnauthorized: false } });
  await c.close();
});

test('SSL_ENABLED=true with SSL_CERT_PATH and SSL_KEY_PATH (the old service\'s settings)', async () => {
  const g = await startGateway({
    env: { SSL_ENABLED: 'true', SSL_CERT_PATH: f('first.crt'), SSL_KEY_PATH: f('first.key') },
    args: ['--admin-listen', 'off'],
  });
  gateways.push(g);
  const c = await connect(g, { secure: true, wsOptions: { ca: fs.readFileSync(f('first.crt')) } });
  await c.close();
  // SSL_ENABLED=false: the paths are ignored, plain ws
  const plain = await startGateway({
    env: { SSL_ENABLED: 'false', SSL_CERT_PATH: f('first.crt'), SSL_KEY_PATH: f('first.key') },
    args: ['--admin-listen', 'off'],
  });
  gateways.push(plain);
  await (await connect(plain)).close();
});

test('a bad certificate or key refuses to start, naming the file', async () => {
  const cases = [
    [['--tls-cert', f('missing.crt'), '--tls-key', f('first.key')], /missing\.crt: no such file/],
    [['--tls-cert', f('first.crt'), '--tls-key', f('missing.key')], /missing\.key: no such file/],
    [['--tls-cert', f('expired.crt'), '--tls-key', f('expired.key')], /expired\.crt expired on 2020-01-02/],
    [['--tls-cert', f('future.crt'), '--tls-key', f('future.key')], /future\.crt is not valid before 2099-01-01/],
    [['--tls-cert', f('first.crt'), '--tls-key', f('other.key')], /other\.key does not match the certificate .*first\.crt/],
    [['--tls-cert', f('garbage.crt'), '--tls-key', f('first.key')], /garbage\.crt: not a PEM certificate/],
    [['--tls-cert', f('first.crt'), '--tls-key', f('garbage.crt')], /garbage\.crt: not a PEM private key/],
    [['--tls-cert', dir, '--tls-key', f('first.key')], /not a PEM certificate/],
  ];
  for (const [argv, re] of cases) {
    const r = await runGateway(['--listen', '127.0.0.1:0', '--admin-listen', 'off', ...argv]);
    assert.equal(r.code, 1, `${argv.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /listening on/, 'never served');
  }
  if (process.getuid && process.getuid() !== 0) { // root reads anything
    fs.copyFileSync(f('first.key'), f('locked.key'));
    fs.chmodSync(f('locked.key'), 0);
    const r = await runGateway(['--listen', '127.0.0.1:0', '--tls-cert', f('first.crt'), '--tls-key', f('locked.key')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /locked\.key: cannot read it/);
  }
  // aivo-gw --check checks the certificate too, like nginx -t
  const good = await runGateway(['--check', '--tls-cert', f('first.crt'), '--tls-key', f('first.key')]);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /TLS OK: .*first\.test/);
  const bad = await runGateway(['--check', '--tls-cert', f('first.crt'), '--tls-key', f('other.key')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /other\.key does not match/);
  // asked for TLS without saying where the files are
  for (const [env, argv, re] of [
    [{ SSL_ENABLED: 'true' }, [], /SSL_ENABLED=true needs a certificate: set SSL_CERT_PATH/],
    [{ SSL_ENABLED: 'true', SSL_CERT_PATH: f('first.crt') }, [], /needs a private key: set SSL_KEY_PATH/],
    [{}, ['--tls-cert', f('first.crt')], /--tls-cert needs --tls-key/],
    [{ SSL_ENABLED: 'maybe' }, [], /SSL_ENABLED: 'maybe' is not true or false/],
  ]) {
    const r = await runGateway(['--listen', '127.0.0.1:0', ...argv], { env });
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /listening on/);
  }
});

async function waitForLog(g, re, count) {
  for (let i = 0; i < 100; i++) {
    if ((g.logs().match(new RegExp(re.source, 'g')) || []).length >= count) return;
    await delay(50);
  }
  throw new Error(`no ${re} (x${count}) in the log:\n${g.logs()}`);
}

test('SIGHUP reloads the certificate under live connections; a bad new one keeps the old', async () => {
  fs.copyFileSync(f('first.crt'), f('live.crt'));
  fs.copyFileSync(f('first.key'), f('live.key'));
  const g = await start(f('live.crt'), f('live.key'), { args: ['--admin-listen', '127.0.0.1:0'] });
  assert.equal((await handshake(g.port)).cn, 'first.test');
  const live = await connect(g, { secure: true, wsOptions: { rejectUnauthorized: false } });
  assert.equal((await live.request('echo', 'before')).data, 'before');

  // a renewal (here also another key type: RSA -> EC): new handshakes get it
  fs.copyFileSync(f('second.crt'), f('live.crt'));
  fs.copyFileSync(f('second.key'), f('live.key'));
  process.kill(g.proc.pid, 'SIGHUP');
  await waitForLog(g, /TLS certificate reloaded: .*second\.test/, 1);
  assert.equal((await handshake(g.port)).cn, 'second.test');
  assert.equal((await live.request('echo', 'after')).data, 'after', 'the live connection is untouched');
  const fresh = await connect(g, { secure: true, wsOptions: { ca: fs.readFileSync(f('second.crt')) } });
  assert.equal((await fresh.request('echo', 'new')).data, 'new');

  // a bad one: mismatched key. Logged; the current certificate stays.
  fs.copyFileSync(f('other.key'), f('live.key'));
  process.kill(g.proc.pid, 'SIGHUP');
  await waitForLog(g, /TLS certificate reload failed, the current certificate stays: .*live\.key does not match/, 1);
  assert.equal((await handshake(g.port)).cn, 'second.test');
  fs.writeFileSync(f('live.crt'), 'garbage');
  process.kill(g.proc.pid, 'SIGHUP');
  await waitForLog(g, /TLS certificate reload failed/, 2);
  assert.equal((await handshake(g.port)).cn, 'second.test');
  assert.equal((await live.request('echo', 'still')).data, 'still');
  assert.ok(g.alive());

  // the admin API stays plain HTTP on loopback
  const m = /admin API on 127\.0\.0\.1:(\d+)/.exec(g.logs());
  assert.ok(m, 'admin API port in the log');
  const res = await fetch(`http://127.0.0.1:${m[1]}/admin/policy`);
  assert.equal(res.status, 200);
  await live.close();
  await fresh.close();
});
