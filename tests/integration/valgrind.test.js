'use strict';
// The loop closes cleanly: a gateway that served clients and drained on SIGTERM
// with connections still open exits 0 with no leak and no memory error under
// valgrind (the two-step lws shutdown on a foreign loop, DESIGN.md §6).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { startGateway, clientPool } = require('./lib/gateway');

test('serve, drain with open connections, exit: no leaks, no errors under valgrind', async (t) => {
  if (spawnSync('sh', ['-c', 'command -v valgrind']).status !== 0) return t.skip('valgrind not installed');
  if (/-asan|sanitize/i.test(process.env.AIVO_GW_BIN || '')) return t.skip('the ASan build runs its own leak check');
  const gw = await startGateway({
    wrapper: ['valgrind', '--leak-check=full', '--show-leak-kinds=definite,indirect,possible',
      '--errors-for-leak-kinds=definite,indirect,possible', '--error-exitcode=99'],
    args: ['--admin-listen', '127.0.0.1:0'],
    timeoutMs: 60000,
  });
  const pool = clientPool();
  const a = await pool.connect(gw, { timeout: 30000 });
  const b = await pool.connect(gw, { timeout: 30000 });
  const opts = { timeout: 30000 };
  await a.request('join', { room: 'r' }, opts);
  await b.request('join', { room: 'r' }, opts);
  await a.request('room:send', { room: 'r', msg: 'x'.repeat(5000) }, opts);
  await b.next('room:message', opts);
  await a.request('agent:learning', { action: 'start_session' }, opts);
  a.ws.send('{broken');
  await a.next('error', opts);
  const closing = Promise.all([a.waitClose(30000), b.waitClose(30000)]);
  const exit = await gw.stop('SIGTERM');
  const [ca, cb] = await closing;
  assert.equal(ca.code, 1001);
  assert.equal(cb.code, 1001);
  const log = gw.logs();
  assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}\n${log.slice(-3000)}`);
  assert.match(log, /ERROR SUMMARY: 0 errors/, log.slice(-3000));
  assert.ok(/All heap blocks were freed|definitely lost: 0 bytes/.test(log), log.slice(-3000));
});
