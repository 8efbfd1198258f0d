'use strict';
// Live policy reload (DESIGN.md §5): a saved edit (in place or by rename) or
// SIGHUP swaps in the new policy; connections stay open and use it from their
// next message; a broken edit keeps the old policy serving and logs file:line.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startGateway, clientPool, delay, REPO } = require('./lib/gateway');

let dir;
let gw;
let client;
const pool = clientPool();

const policy = `local gw = require "aivo"
return gw.policy { plugins = { "echo", "stamp" } }
`;
const stamp = (v) => `local gw = require "aivo"
return gw.plugin {
  name = "stamp", version = "${v}",
  events = { version = function(conn, msg) return gw.DONE, { v = "${v}" } end },
}
`;

function writeInPlace(file, text) {
  fs.writeFileSync(file, text);
}
function writeByRename(file, text) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.swp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

async function version() {
  return (await client.request('version')).data.v;
}

async function waitForVersion(v, ms = 8000) {
  const t0 = Date.now();
  let seen;
  while (Date.now() - t0 < ms) {
    seen = await version();
    if (seen === v) return;
    await delay(100);
  }
  assert.fail(`policy version stayed ${seen}, expected ${v}\n${gw.logs()}`);
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-reload-'));
  fs.mkdirSync(path.join(dir, 'plugins'));
  fs.writeFileSync(path.join(dir, 'policy.lua'), policy);
  fs.writeFileSync(path.join(dir, 'plugins', 'stamp.lua'), stamp('1'));
  gw = await startGateway({
    policy: path.join(dir, 'policy.lua'),
    args: ['--plugin-path', path.join(REPO, 'plugins')],
  });
  client = await pool.connect(gw);
  assert.equal(await version(), '1');
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('an in-place save of a plugin reloads it; the connection stays open', async () => {
  writeInPlace(path.join(dir, 'plugins', 'stamp.lua'), stamp('2'));
  await waitForVersion('2');
  assert.ok(client.open);
  assert.equal((await client.request('echo', 'same socket')).data, 'same socket');
});

test('a save by rename (how editors save) reloads it', async () => {
  writeByRename(path.join(dir, 'plugins', 'stamp.lua'), stamp('3'));
  await waitForVersion('3');
});

test('a broken edit keeps the old policy serving and logs file:line', async () => {
  const file = path.join(dir, 'plugins', 'stamp.lua');
  writeInPlace(file, 'local gw = require "aivo"\nreturn gw.plugin {\n  name = "stamp",\n  oops oops\n}\n');
  const t0 = Date.now();
  // the "failed" line and its error lines are written separately: wait for both
  while (!/stamp\.lua:4:/.test(gw.logs()) && Date.now() - t0 < 8000) await delay(100);
  assert.match(gw.logs(), /policy reload \(file change\) failed/);
  assert.match(gw.logs(), /stamp\.lua:4:/);
  assert.equal(await version(), '3');
  assert.ok(client.open);
  // and the fix recovers
  writeInPlace(file, stamp('4'));
  await waitForVersion('4');
});

test('SIGHUP reloads too, and files that are not .lua do not trigger a reload', async () => {
  const before = (gw.logs().match(/policy reloaded/g) || []).length;
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a policy file');
  await delay(1000);
  assert.equal((gw.logs().match(/policy reloaded/g) || []).length, before, 'a .txt save reloaded');
  // an edit nobody saves through the watcher: only the signal picks it up
  gw.proc.kill('SIGHUP');
  const t0 = Date.now();
  while ((gw.logs().match(/policy reloaded \(SIGHUP\)/g) || []).length < 1 && Date.now() - t0 < 8000) await delay(100);
  assert.match(gw.logs(), /policy reloaded \(SIGHUP\): generation \d+/);
  assert.equal(await version(), '4');
  assert.ok(client.open);
});
