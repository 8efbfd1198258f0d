'use strict';
// The plugin store (docs/policy-api.md, "The plugin store"): a plugin keeps a per-room
// history in gw.store; the history survives a SIGHUP reload and a reload by file save,
// while the plugin's module-level Lua state starts afresh; a second plugin using the same
// keys sees none of the first one's entries; a value over store.max_value_bytes is
// refused with nil, "too_large".

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startGateway, clientPool, delay } = require('./lib/gateway');

let dir;
let gw;
let client;
const pool = clientPool();

const history = (name, v) => `local gw = require "aivo"
local generation = gw.new_id() -- module state: new on every reload
return gw.plugin {
  name = "${name}", version = "${v}",
  events = {
    ["${name}:say"] = function(conn, msg)
      local room = gw.store:room(msg.data.room)
      local list = room:get("history") or {}
      list[#list + 1] = msg.data.text
      local ok, err = room:set("history", list)
      if not ok then return gw.REJECT, err, "not kept" end
      return gw.DONE, { history = list, v = "${v}", generation = generation }
    end,
  },
}
`;

const say = async (name, room, text) => (await client.request(`${name}:say`, { room, text }));

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-plugins-store-'));
  fs.mkdirSync(path.join(dir, 'plugins'));
  fs.writeFileSync(path.join(dir, 'policy.lua'),
    'local gw = require "aivo"\nreturn gw.policy { plugins = { "chat", "other" } }\n');
  fs.writeFileSync(path.join(dir, 'plugins', 'chat.lua'), history('chat', '1'));
  fs.writeFileSync(path.join(dir, 'plugins', 'other.lua'), history('other', '1'));
  gw = await startGateway({ policy: path.join(dir, 'policy.lua'), set: ['store.max_value_bytes=200'] });
  client = await pool.connect(gw);
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a per-room history survives SIGHUP and a file-save reload', async () => {
  const a = await say('chat', 'lobby', 'one');
  assert.deepEqual(a.data.history, ['one']);
  await say('chat', 'lobby', 'two');
  assert.deepEqual((await say('chat', 'kitchen', 'elsewhere')).data.history, ['elsewhere']);

  gw.proc.kill('SIGHUP');
  let b;
  const t0 = Date.now();
  do { // the reload is asynchronous: wait for the new generation's module state
    await delay(100);
    b = await say('chat', 'lobby', 'three');
  } while (b.data.generation === a.data.generation && Date.now() - t0 < 8000);
  assert.notEqual(b.data.generation, a.data.generation, `no reload after SIGHUP\n${gw.logs()}`);
  assert.deepEqual(b.data.history.slice(0, 3), ['one', 'two', 'three']);

  fs.writeFileSync(path.join(dir, 'plugins', 'chat.lua'), history('chat', '2'));
  let c;
  const t1 = Date.now();
  do {
    await delay(100);
    c = await say('chat', 'lobby', 'after save');
  } while (c.data.v !== '2' && Date.now() - t1 < 8000);
  assert.equal(c.data.v, '2', `no reload after the save\n${gw.logs()}`);
  assert.equal(c.data.history[0], 'one');
  assert.equal(c.data.history[c.data.history.length - 1], 'after save');
  assert.deepEqual((await say('chat', 'kitchen', 'again')).data.history, ['elsewhere', 'again']);
});

test('another plugin using the same room and key has its own entries', async () => {
  assert.deepEqual((await say('other', 'lobby', 'mine')).data.history, ['mine']);
});

test('a value over store.max_value_bytes is refused with too_large and the old one kept', async () => {
  const big = 'x'.repeat(300);
  const r = await say('other', 'lobby', big);
  assert.equal(r.error.code, 'too_large');
  assert.deepEqual((await say('other', 'lobby', 'small')).data.history, ['mine', 'small']);
});
