'use strict';
// What the edit watch covers (docs/policy-api.md, "What is watched"): a plugin in a
// --plugin-path folder outside the policy's folder, and a plugins/ folder created under
// the policy's folder after the gateway started. Each save reloads the policy.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startGateway, clientPool, delay } = require('./lib/gateway');

let root;
let gw;
let client;
const pool = clientPool();

const stamp = (v) => `local gw = require "aivo"
return gw.plugin {
  name = "stamp", version = "${v}",
  events = { version = function(conn, msg) return gw.DONE, { v = "${v}" } end },
}
`;

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
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-plugins-watch-'));
  fs.mkdirSync(path.join(root, 'policy'));
  fs.mkdirSync(path.join(root, 'elsewhere'));
  fs.writeFileSync(path.join(root, 'policy', 'policy.lua'),
    'local gw = require "aivo"\nreturn gw.policy { plugins = { "stamp" } }\n');
  fs.writeFileSync(path.join(root, 'elsewhere', 'stamp.lua'), stamp('outside-1'));
  gw = await startGateway({
    policy: path.join(root, 'policy', 'policy.lua'),
    args: ['--plugin-path', path.join(root, 'elsewhere')],
  });
  client = await pool.connect(gw);
  assert.equal(await version(), 'outside-1');
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
  fs.rmSync(root, { recursive: true, force: true });
});

test('saving a plugin in a --plugin-path folder outside the policy folder reloads it', async () => {
  fs.writeFileSync(path.join(root, 'elsewhere', 'stamp.lua'), stamp('outside-2'));
  await waitForVersion('outside-2');
  assert.ok(client.open, 'the connection stays open across the reload');
});

test('a plugins/ folder created after start is watched: a plugin written there reloads', async () => {
  // <policy dir>/plugins comes first in the search path, so the new file wins once loaded
  fs.mkdirSync(path.join(root, 'policy', 'plugins'));
  fs.writeFileSync(path.join(root, 'policy', 'plugins', 'stamp.lua'), stamp('local-1'));
  await waitForVersion('local-1');
  // and the new folder stays watched: a second save there reloads again
  await delay(400); // past the debounce of the first reload
  fs.writeFileSync(path.join(root, 'policy', 'plugins', 'stamp.lua'), stamp('local-2'));
  await waitForVersion('local-2');
});

test('a folder created deeper in a watched tree is watched too', async () => {
  fs.mkdirSync(path.join(root, 'policy', 'plugins', 'stamp'), { recursive: true });
  fs.rmSync(path.join(root, 'policy', 'plugins', 'stamp.lua'));
  fs.writeFileSync(path.join(root, 'policy', 'plugins', 'stamp', 'init.lua'), stamp('nested-1'));
  await waitForVersion('nested-1');
});
