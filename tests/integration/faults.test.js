'use strict';
// Containment of faulty policy code (tests/policies/faulty.lua): a handler
// that raises, loops forever or eats memory costs its caller an internal_error
// ack and nothing more. The gateway keeps serving everyone.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startGateway, clientPool, TEST_POLICIES, REPO } = require('./lib/gateway');

const POLICY = path.join(TEST_POLICIES, 'faulty.lua');
const PLUGIN = path.join(TEST_POLICIES, 'plugins', 'faulty_handlers.lua');
// Small limits keep each fault short; they are still far above what echo needs.
const BUDGET = 1000000;
const MEMORY_MB = 32;
// "Within a few seconds", with room for a loaded 2-core CI machine.
const FAULT_DEADLINE_MS = 8000;

let gw;
let watcher; // connected all along, never misbehaves
const pool = clientPool();

before(async () => {
  gw = await startGateway({
    policy: POLICY,
    set: [`lua.instruction_budget=${BUDGET}`, `lua.memory_limit_mb=${MEMORY_MB}`],
    // The shipped echo plugin lives in the repo's plugins/, not next to this policy.
    args: ['--plugin-path', path.join(REPO, 'plugins')],
  });
  watcher = await pool.connect(gw);
  assert.equal((await watcher.request('echo', 'hi')).data, 'hi');
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
});

function lineOf(file, needle) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `${needle} not found in ${file}`);
  return i + 1;
}

// Fire the faulty event from a fresh client while the watcher keeps asking for
// echoes; check the ack, the timing, and that both clients are served after.
async function provoke(event) {
  const c = await pool.connect(gw);
  const t0 = Date.now();
  const faulty = c.request(event, { please: true }, { timeout: FAULT_DEADLINE_MS + 5000 });
  const meanwhile = watcher.request('echo', `during ${event}`, { timeout: FAULT_DEADLINE_MS + 5000 });
  const ack = await faulty;
  const elapsed = Date.now() - t0;

  assert.ok(ack.error, `${event}: expected an error ack, got ${JSON.stringify(ack)}`);
  assert.equal(ack.error.code, 'internal_error', `${event}: ${JSON.stringify(ack.error)}`);
  assert.ok(elapsed < FAULT_DEADLINE_MS, `${event}: took ${elapsed} ms`);
  // A generic message: policy internals are for the log, not for clients.
  assert.equal(typeof ack.error.message, 'string');
  assert.doesNotMatch(ack.error.message, /faulty_handlers\.lua/, 'client must not see policy file paths');

  assert.equal((await meanwhile).data, `during ${event}`, 'watcher answered while the fault ran');
  assert.ok(gw.alive(), `gateway died on ${event}\n${gw.logs().slice(-3000)}`);

  // Right after: the faulty client itself and the watcher are both served.
  assert.equal((await c.request('echo', `after ${event}`)).data, `after ${event}`);
  assert.equal((await watcher.request('echo', `watcher after ${event}`)).data, `watcher after ${event}`);
  assert.ok(c.open, `${event}: the client that triggered the fault stays connected`);
  return c;
}

test('a handler that raises gets internal_error and the log names file:line', async () => {
  await provoke('boom');
  const line = lineOf(PLUGIN, 'error("faulty plugin: boom requested")');
  const logs = gw.logs();
  assert.match(logs, new RegExp(`faulty_handlers\\.lua:${line}\\b`), `log should name faulty_handlers.lua:${line}\n${logs.slice(-3000)}`);
  assert.match(logs, /boom requested/, 'log carries the error message');
});

test('an endless loop is stopped by the instruction budget', async () => {
  await provoke('spin');
});

test('unbounded allocation is stopped by the memory cap', async () => {
  const mark = gw.logs().length;
  await provoke('hog');
  // Operators need to see why the handler failed.
  assert.match(gw.logs().slice(mark), /mem/i, `log should mention memory\n${gw.logs().slice(mark, mark + 3000)}`);
});

test('repeated faults from several clients do not degrade the gateway', async () => {
  const clients = await Promise.all([pool.connect(gw), pool.connect(gw), pool.connect(gw)]);
  for (let round = 0; round < 3; round++) {
    const acks = await Promise.all(clients.flatMap((c) => [
      c.request('boom', null, { timeout: 20000 }),
      c.request('spin', null, { timeout: 20000 }),
      c.request('hog', null, { timeout: 20000 }),
      c.request('echo', round, { timeout: 20000 }),
    ]));
    acks.forEach((ack, i) => {
      if (i % 4 === 3) assert.equal(ack.data, round, `echo in round ${round}`);
      else assert.equal(ack.error && ack.error.code, 'internal_error', `fault ${i % 4} in round ${round}: ${JSON.stringify(ack)}`);
    });
  }
  assert.equal((await watcher.request('echo', 'still fine')).data, 'still fine');
  const fresh = await pool.connect(gw);
  assert.equal((await fresh.request('echo', 'new client')).data, 'new client');
  assert.ok(gw.alive());
});
