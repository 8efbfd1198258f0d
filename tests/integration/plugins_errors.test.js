'use strict';
// A runtime error in a plugin's handler is logged with the plugin's handler and the event
// (not as "policy message hook failed"), and a policy file never loads as its own plugin.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startGateway, runGateway, clientPool, delay } = require('./lib/gateway');

let dir;
let gw;
const pool = clientPool();

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-plugins-errors-'));
  fs.mkdirSync(path.join(dir, 'plugins'));
  fs.writeFileSync(path.join(dir, 'policy.lua'),
    'local gw = require "aivo"\nreturn gw.policy { plugins = { "faulty" } }\n');
  fs.writeFileSync(path.join(dir, 'plugins', 'faulty.lua'), `local gw = require "aivo"
return gw.plugin {
  name = "faulty",
  events = { boom = function(conn, msg) error("kaboom") end },
  on_message = function(conn, msg)
    if msg.event == "crash" then local t = nil; return t.field end
  end,
}
`);
  gw = await startGateway({ policy: path.join(dir, 'policy.lua') });
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

async function logLine(re) {
  const t0 = Date.now();
  while (!re.test(gw.logs()) && Date.now() - t0 < 5000) await delay(50);
  const line = gw.logs().split('\n').find((l) => re.test(l));
  assert.ok(line, `no log line matching ${re}\n${gw.logs()}`);
  return line;
}

test('an error in events[e] names the plugin and the event', async () => {
  const c = await pool.connect(gw);
  const r = await c.request('boom', {});
  assert.equal(r.error.code, 'internal_error');
  const line = await logLine(/kaboom/);
  assert.match(line, /plugin 'faulty' events\['boom'\] failed \(message hook, error\): .*faulty\.lua:4: kaboom/);
  assert.doesNotMatch(line, /policy message hook failed/);
});

test('an error in on_message names the plugin and the event it was handling', async () => {
  const c = await pool.connect(gw);
  const r = await c.request('crash', {});
  assert.equal(r.error.code, 'internal_error');
  const line = await logLine(/attempt to index/);
  assert.match(line, /plugin 'faulty' on_message \(event 'crash'\) failed \(message hook, error\): .*faulty\.lua:6:/);
});

test('a policy whose file name is a plugin name does not load itself as that plugin', async () => {
  const own = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-plugins-self-'));
  try {
    fs.writeFileSync(path.join(own, 'chat.lua'),
      'local gw = require "aivo"\nreturn gw.policy { plugins = { "chat" } }\n');
    const r = await runGateway(['--policy', path.join(own, 'chat.lua'), '--check',
      '--plugin-path', path.join(own, 'none')]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /plugin 'chat' not found in: .*\(the policy file itself is never loaded as a plugin\)/);
    assert.doesNotMatch(r.stderr, /a plugin file must return gw\.plugin/);
    // and a real plugin of that name beside it is found
    fs.mkdirSync(path.join(own, 'plugins'));
    fs.writeFileSync(path.join(own, 'plugins', 'chat.lua'),
      'return require("aivo").plugin { name = "chat", version = "9.9.9" }\n');
    const ok = await runGateway(['--policy', path.join(own, 'chat.lua'), '--check']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /chat@9\.9\.9/);
  } finally {
    fs.rmSync(own, { recursive: true, force: true });
  }
});
