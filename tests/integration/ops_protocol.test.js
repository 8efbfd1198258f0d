'use strict';
// Client mistakes in a /ws message are the client's error, told to the client and
// never an error-level log line (docs/protocol.md): a number out of double range,
// an "id" of null, and an event name holding a NUL byte.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startGateway, clientPool } = require('./lib/gateway');

let gw;
const pool = clientPool();

before(async () => {
  gw = await startGateway({ args: ['--log-level', 'debug'] });
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGTERM');
});

const errorLines = () => gw.logs().split('\n').filter((l) => /^\S+ error /.test(l));

test('a number out of double range (1e400) is bad_request, logged at debug, never internal_error', async () => {
  const c = await pool.connect(gw);
  for (const raw of ['{"event":"echo","data":1e400,"id":5}', '{"event":"echo","data":[-1E999],"id":6}']) {
    await c.sendRaw(raw);
    const err = await c.next('error');
    assert.equal(err.data.code, 'bad_request', JSON.stringify(err));
    assert.match(err.data.message, /number out of range/);
  }
  await c.sync(); // nothing else came back for those two: no internal_error ack
  assert.deepEqual(c.received.filter((f) => f.ack !== undefined && f.error), []);
  assert.deepEqual(errorLines(), [], 'no error-level line for a client mistake');
  assert.match(gw.logs(), /debug conn=\d+ bad_request: invalid JSON: number out of range/);
  // the connection is still good
  assert.equal((await c.request('echo', 1e300)).data, 1e300);
});

test('"id": null is answered bad_request (not run without the ack it asked for)', async () => {
  const c = await pool.connect(gw);
  await c.sendRaw('{"event":"echo","data":"x","id":null}');
  const err = await c.next('error');
  assert.equal(err.data.code, 'bad_request');
  assert.match(err.data.message, /"id" must be a non-negative integer; leave it out/);
  // no id at all is still fire-and-forget: no answer, no error
  await c.sendRaw('{"event":"echo","data":"y"}');
  await c.sync();
  assert.equal(c.events('error').length, 1);
});

test('a NUL byte in an event name does not cut the error text', async () => {
  const c = await pool.connect(gw);
  await c.sendRaw('{"event":"ab\\u0000cd\\nef","id":9}');
  const ack = await c.nextMatching((f) => f.ack === 9, 'the ack for id 9');
  assert.equal(ack.error.code, 'unknown_event');
  assert.equal(ack.error.message, "no handler for event 'ab\\x00cd\\x0aef'");
});
