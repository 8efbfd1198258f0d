'use strict';
// The command line and process lifecycle an operator relies on: help/version,
// exit codes for usage and config errors, --check, a taken port, env PORT,
// and a graceful drain on SIGTERM/SIGINT that closes clients with 1001.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const {
  startGateway, runGateway, clientPool, freePort, DEFAULT_POLICY, TEST_POLICIES,
} = require('./lib/gateway');

function lines(s) {
  return s.split('\n').map((l) => l.trim()).filter(Boolean);
}

function lineOf(file, needle) {
  const i = fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `${needle} not found in ${file}`);
  return i + 1;
}

function show(r) {
  return `code=${r.code} signal=${r.signal} timedOut=${r.timedOut}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

test('--version prints a version and exits 0', async () => {
  const r = await runGateway(['--version']);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /\d+\.\d+/, `no version number on stdout\n${show(r)}`);
});

test('--help prints usage naming the main flags and exits 0', async () => {
  const r = await runGateway(['--help']);
  assert.equal(r.code, 0, show(r));
  for (const flag of ['--policy', '--listen', '--set', '--check']) {
    assert.ok(r.stdout.includes(flag), `--help does not mention ${flag}\n${show(r)}`);
  }
});

test('an unknown flag exits 2 with a one-line error naming it', async () => {
  const r = await runGateway(['--policy', DEFAULT_POLICY, '--no-such-flag']);
  assert.equal(r.code, 2, show(r));
  assert.equal(r.signal, null);
  const err = lines(r.stderr);
  assert.equal(err.length, 1, `expected one line on stderr\n${show(r)}`);
  assert.match(err[0], /--no-such-flag/);
});

test('--check on the shipped default policy prints policy OK and exits 0', async () => {
  const r = await runGateway(['--check', '--policy', DEFAULT_POLICY]);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout + r.stderr, /policy OK/, show(r));
});

test('--check on a policy with a syntax error exits 1 naming file:line', async () => {
  const file = path.join(TEST_POLICIES, 'broken_syntax.lua');
  const r = await runGateway(['--check', '--policy', file]);
  assert.equal(r.code, 1, show(r));
  assert.equal(r.signal, null);
  // The syntax error is the surplus `end` on line 7.
  assert.match(r.stderr, /broken_syntax\.lua:7:/, show(r));
  assert.doesNotMatch(r.stdout + r.stderr, /policy OK/);
});

test('--check on a policy with an unknown hook key exits 1 naming file:line and the key', async () => {
  const file = path.join(TEST_POLICIES, 'broken_shape.lua');
  const line = lineOf(file, 'mesage = function');
  const r = await runGateway(['--check', '--policy', file]);
  assert.equal(r.code, 1, show(r));
  assert.equal(r.signal, null);
  const hit = lines(r.stderr).find((l) => l.includes('mesage'));
  assert.ok(hit, `no error mentions the key 'mesage'\n${show(r)}`);
  assert.match(hit, new RegExp(`broken_shape\\.lua:${line}:`), `error should point at line ${line}\n${show(r)}`);
});

test('a port already in use exits 1 with an error naming the port, not a crash', async () => {
  const blocker = net.createServer();
  await new Promise((resolve, reject) => {
    blocker.once('error', reject);
    blocker.listen(0, '127.0.0.1', resolve);
  });
  const { port } = blocker.address();
  try {
    const r = await runGateway(['--policy', DEFAULT_POLICY, '--listen', `127.0.0.1:${port}`]);
    assert.equal(r.signal, null, `killed by a signal: a crash\n${show(r)}`);
    assert.equal(r.timedOut, false, `kept running on a taken port\n${show(r)}`);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, new RegExp(`\\b${port}\\b`), `error should name port ${port}\n${show(r)}`);
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
  }
});

test('--set of an unknown config key exits 1 naming the key', async () => {
  const r = await runGateway(['--policy', DEFAULT_POLICY, '--listen', '127.0.0.1:0', '--set', 'nosuch.knob=1']);
  assert.equal(r.code, 1, show(r));
  assert.equal(r.signal, null);
  assert.match(r.stderr, /nosuch\.knob/, show(r));
});

test('--set with a value of the wrong type exits 1 naming the key', async () => {
  const r = await runGateway(['--policy', DEFAULT_POLICY, '--listen', '127.0.0.1:0', '--set', 'server.max_message_size=lots']);
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /server\.max_message_size/, show(r));
});

test('a missing policy file exits 1 naming the file', async () => {
  const r = await runGateway(['--policy', '/nonexistent/aivo-policy.lua', '--listen', '127.0.0.1:0']);
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /aivo-policy\.lua/, show(r));
});

test('env PORT is used when --listen is absent', async (t) => {
  const port = await freePort();
  const gw = await startGateway({ listen: null, env: { PORT: String(port) } });
  const pool = clientPool();
  t.after(async () => { await pool.closeAll(); await gw.stop('SIGKILL'); });
  assert.equal(gw.port, port, `logged port ${gw.port}, PORT was ${port}`);
  const c = await pool.connect(port);
  assert.equal((await c.request('echo', 'via PORT')).data, 'via PORT');
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`${signal} closes every client with 1001 and exits 0`, async (t) => {
    const gw = await startGateway();
    const pool = clientPool();
    t.after(async () => { await pool.closeAll(); await gw.stop('SIGKILL'); });

    const clients = await Promise.all([pool.connect(gw), pool.connect(gw), pool.connect(gw)]);
    // Make sure each connection is fully set up and in a room before the signal.
    for (const [i, c] of clients.entries()) {
      assert.equal((await c.request('echo', i)).data, i);
      assert.deepEqual((await c.request('join', { room: 'drain' })).data, { ok: true, room: 'drain' });
    }

    const exit = await gw.stop(signal);
    assert.equal(exit.timedOut, undefined, `did not exit within 15 s of ${signal}\n${gw.logs().slice(-3000)}`);
    assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null },
      `exit after ${signal}\n${gw.logs().slice(-3000)}`);

    const closes = await Promise.all(clients.map((c) => c.waitClose(5000)));
    closes.forEach((ci, i) => assert.equal(ci.code, 1001, `client ${i} close code; log:\n${gw.logs().slice(-2000)}`));

    // The port is released: nothing accepts connections any more.
    await assert.rejects(pool.connect(gw.port, { timeout: 3000 }));
  });
}
