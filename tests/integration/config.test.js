'use strict';
// Configuration as an operator sets it on the real binary: precedence
// (command line > environment > the policy's config > defaults), JSON logs,
// and SO_REUSEPORT only when asked for.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, clientPool, freePort } = require('./lib/gateway');

// The limit in force shows as the size at which a message is refused with 1009.
async function maxSizeInForce(gw, pool) {
  const c = await pool.connect(gw);
  const small = await c.request('echo', 'x'.repeat(150));
  assert.equal(small.data.length, 150);
  c.ws.send(JSON.stringify({ event: 'echo', data: 'y'.repeat(3000) }));
  return c.waitClose();
}

test('an AIVO_* environment variable overrides the defaults', async (t) => {
  const pool = clientPool();
  const gw = await startGateway({ env: { AIVO_SERVER_MAX_MESSAGE_SIZE: '2048' } });
  t.after(async () => { await pool.closeAll(); await gw.stop('SIGKILL'); });
  assert.equal((await maxSizeInForce(gw, pool)).code, 1009);
});

test('--set wins over the environment', async (t) => {
  const pool = clientPool();
  const gw = await startGateway({
    env: { AIVO_SERVER_MAX_MESSAGE_SIZE: '64' },
    set: ['server.max_message_size=2048'],
  });
  t.after(async () => { await pool.closeAll(); await gw.stop('SIGKILL'); });
  // 150 bytes pass (the env's 64 is overridden), 3000 do not (2048 is in force)
  assert.equal((await maxSizeInForce(gw, pool)).code, 1009);
});

test('--log-format json writes one JSON object per line', async (t) => {
  const gw = await startGateway({ args: ['--log-format', 'json'] });
  t.after(() => gw.stop('SIGKILL'));
  const lines = gw.logs().split('\n').filter(Boolean);
  assert.ok(lines.length >= 1);
  for (const l of lines) {
    const o = JSON.parse(l);
    assert.ok(o.ts && o.level && typeof o.msg === 'string', l);
  }
  assert.ok(lines.some((l) => JSON.parse(l).msg.includes('listening on')));
});

test('a second gateway on the same port starts only with --reuse-port', async (t) => {
  const port = await freePort();
  const a = await startGateway({ listen: `127.0.0.1:${port}`, args: ['--reuse-port'] });
  t.after(() => a.stop('SIGKILL'));
  const b = await startGateway({ listen: `127.0.0.1:${port}`, args: ['--reuse-port'] });
  t.after(() => b.stop('SIGKILL'));
  assert.equal(a.port, port);
  assert.equal(b.port, port);
  await assert.rejects(startGateway({ listen: `127.0.0.1:${port}` }), /exited \(code 1/);
});
