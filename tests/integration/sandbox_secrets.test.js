'use strict';
// Issue 12, item 5, against the real binary (docs/security.md "What policy code sees"):
// plugins see no secrets, load no file outside the policy, runtime and plugin folders (a
// symlink does not lead out, and a refusal never echoes the file), and cannot change what
// other plugins and connections use (string functions, the string metatable, gw modules).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startGateway, clientPool, delay, REPO } = require('./lib/gateway');

let dir;
let outside;
let secretFile;
let gw;
const pool = clientPool();

const ADMIN = 'admin-token-5f1e0c2b-must-not-leak';
const SECRET_TEXT = 'TOPSECRET-9c41-must-not-leak';

const policy = (extra = '') => `local gw = require "aivo"
return gw.policy {
  plugins = { "echo", "probe"${extra} },
  auth = function() return true end,
}
`;

const probe = `local gw = require "aivo"
local core = require "aivo.core"
local evil = function() return "pwned" end
local attempts = {
  string_upper = function() string.upper = evil end,
  string_find = function() string.find = evil end,
  string_new = function() string.pwn = evil end,
  rawset_string = function() rawset(string, "upper", evil) end,
  mt_index = function() getmetatable("").__index = { upper = evil } end,
  mt_index_field = function() getmetatable("").__index.upper = evil end,
  mt_replace = function() setmetatable(string, { __index = { upper = evil } }) end,
  table_insert = function() table.insert = evil end,
  math_floor = function() math.floor = evil end,
  gw_publish = function() gw.publish = evil end,
  gw_log = function() gw.log.info = evil end,
  gw_done = function() gw.DONE = {} end,
  rawset_gw = function() rawset(gw, "publish", evil) end,
  core_emit = function() core.emit = evil end,
  core_getenv = function() core.getenv = function() return "x" end end,
  json_encode = function() gw.json.encode = evil end,
  store_get = function() gw.store.get = evil end,
  rawset_store = function() rawset(gw.store, "set", evil) end,
  store_mt = function()
    local mt = getmetatable(gw.store)
    if not mt then error("protected metatable") end
    mt.__index = { get = evil }
  end,
}
return gw.plugin {
  name = "probe", version = "1.0.0",
  events = {
    getenv = function(conn, msg) return gw.DONE, { v = tostring(core.getenv(msg.data)) } end,
    load_file = function(conn, msg)
      local f, err = core.load_file(msg.data)
      return gw.DONE, { loaded = f ~= nil, err = tostring(err) }
    end,
    tamper = function(conn, msg)
      local out = {}
      for name, f in pairs(attempts) do
        local ok, err = pcall(f)
        out[name] = ok and "allowed" or tostring(err)
      end
      return gw.DONE, out
    end,
    check = function(conn, msg)
      return gw.DONE, ("abc"):upper() .. string.upper("d") .. tostring(("abc"):find("b"))
        .. tostring(math.floor(2.5)) .. type(gw.publish) .. type(gw.log.info) .. tostring(gw.DONE)
    end,
  },
}
`;

async function reload(timeoutMs = 15000) {
  const count = (re) => (gw.logs().match(re) || []).length;
  const ok0 = count(/policy reloaded \(SIGHUP\)/g);
  const err0 = count(/policy reload \(SIGHUP\) failed/g);
  const t0 = Date.now();
  process.kill(gw.proc.pid, 'SIGHUP');
  for (;;) {
    if (count(/policy reloaded \(SIGHUP\)/g) > ok0) return true;
    if (count(/policy reload \(SIGHUP\) failed/g) > err0) return false;
    if (Date.now() - t0 > timeoutMs) assert.fail(`no reload outcome\n${gw.logs().slice(-3000)}`);
    await delay(10);
  }
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-sandbox-secrets-'));
  outside = fs.mkdtempSync(path.join(os.tmpdir(), 'aivo-sandbox-outside-'));
  secretFile = path.join(outside, 'secret.lua');
  // a syntax error whose message would quote the secret if the file were compiled
  fs.writeFileSync(secretFile, `local x = = "${SECRET_TEXT}"\n${SECRET_TEXT}\n`);
  fs.mkdirSync(path.join(dir, 'plugins'));
  fs.writeFileSync(path.join(dir, 'policy.lua'), policy());
  fs.writeFileSync(path.join(dir, 'plugins', 'probe.lua'), probe);
  fs.symlinkSync(secretFile, path.join(dir, 'plugins', 'evil.lua'));
  gw = await startGateway({
    policy: path.join(dir, 'policy.lua'),
    args: ['--plugin-path', path.join(REPO, 'plugins')],
    env: {
      AIVO_ADMIN_TOKEN: ADMIN,
      ADMIN_TOKEN: ADMIN,
      AIVO_REDIS_PASSWORD: ADMIN,
      AIVO_PROBE_API_KEY: ADMIN,
      AIVO_SOCKETIO_TOKEN_FIELD: 'token',
      AIVO_PROBE_GREETING: 'hello',
    },
  });
});

after(async () => {
  await pool.closeAll();
  if (gw) await gw.stop('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

test('getenv gives no secrets, and still the non-secret AIVO_ variables', async () => {
  const c = await pool.connect(gw);
  for (const name of ['AIVO_ADMIN_TOKEN', 'ADMIN_TOKEN', 'AIVO_REDIS_PASSWORD', 'AIVO_PROBE_API_KEY',
    'JWT_SECRET', 'HOME', 'PATH']) {
    const ack = await c.request('getenv', name);
    assert.equal(ack.data.v, 'nil', `${name}: ${JSON.stringify(ack)}`);
  }
  assert.equal((await c.request('getenv', 'AIVO_PROBE_GREETING')).data.v, 'hello');
  assert.equal((await c.request('getenv', 'AIVO_SOCKETIO_TOKEN_FIELD')).data.v, 'token');
});

test('load_file reads nothing outside the policy, runtime and plugin folders', async () => {
  const c = await pool.connect(gw);
  const targets = [secretFile, path.join(dir, 'plugins', 'evil.lua'), path.join(dir, '..', path.basename(outside), 'secret.lua'),
    '/etc/passwd'];
  for (const t of targets) {
    const ack = await c.request('load_file', t);
    assert.equal(ack.data.loaded, false, t);
    assert.match(ack.data.err, /refused/, t);
    assert.ok(!ack.data.err.includes(SECRET_TEXT) && !ack.data.err.includes('root:'), ack.data.err);
  }
  // a file of the policy folder still loads
  assert.equal((await c.request('load_file', path.join(dir, 'plugins', 'probe.lua'))).data.loaded, true);
  // a policy listing the symlinked plugin is refused, and the log does not quote the file
  fs.writeFileSync(path.join(dir, 'policy.lua'), policy(', "evil"'));
  assert.equal(await reload(), false);
  const t0 = Date.now();
  while (!/evil\.lua: refused/.test(gw.logs()) && Date.now() - t0 < 5000) await delay(20);
  assert.match(gw.logs(), /evil\.lua: refused/);
  assert.ok(!gw.logs().includes(SECRET_TEXT), 'the secret file\'s content reached the log');
  assert.ok(!gw.logs().includes(ADMIN), 'the admin token reached the log');
  fs.writeFileSync(path.join(dir, 'policy.lua'), policy());
  assert.equal(await reload(), true);
});

test('shared modules and the string metatable are read-only; another connection is unaffected', async () => {
  const attacker = await pool.connect(gw);
  const other = await pool.connect(gw);
  const want = 'ABCD22functionfunctiongw.DONE';
  assert.equal((await other.request('check')).data, want);
  const ack = await attacker.request('tamper');
  assert.ok(!ack.error, JSON.stringify(ack));
  for (const [name, outcome] of Object.entries(ack.data)) {
    assert.match(outcome, /read-only|protected metatable/, `${name}: ${outcome}`);
  }
  assert.equal(Object.keys(ack.data).length, 19);
  assert.equal((await other.request('check')).data, want);
  assert.equal((await attacker.request('check')).data, want);
  assert.equal((await other.request('echo', 'unaffected')).data, 'unaffected');
});
