local fake = require "helpers.fake_core"
local runtime = require "aivo.runtime"
local gw = require "aivo"

-- Writes a policy (and plugins under plugins/) to a temp dir and loads it.
local function load(policy, plugins, overrides, env)
  local files = { ["policy.lua"] = policy }
  for name, source in pairs(plugins or {}) do
    files["plugins/" .. name .. ".lua"] = source
  end
  local dir = fake.tree(files)
  fake.reset({ policy_dir = dir, plugin_path = dir .. "/none", env = env })
  local hooks, errs = runtime.load(dir .. "/policy.lua", overrides)
  return hooks, errs, dir
end

-- Like load, but the policy must load; failing shows its errors.
local function must_load(...)
  local hooks, errs = load(...)
  assert(hooks, errs and table.concat(errs, "\n"))
  return hooks
end

local function policy(body)
  return 'local gw = require "aivo"\nreturn gw.policy {\n' .. body .. "\n}\n"
end

local function plugin(body)
  return 'local gw = require "aivo"\nreturn gw.plugin {\n' .. body .. "\n}\n"
end

-- A plugin that records each call in trace and answers with the given verdict.
local function tracer(name, priority, verdict)
  return plugin(([[
  name = %q, priority = %d,
  on_message = function(conn, msg)
    trace[#trace + 1] = %q
    %s
  end,
]]):format(name, priority, name, verdict or ""))
end

local function set(key, value)
  return { key = key, value = value }
end

-- Asserts that errs holds exactly one error containing text (plain match).
local function has_error(errs, text)
  assert.is_table(errs)
  local hits = 0
  for _, e in ipairs(errs) do
    if e:find(text, 1, true) then hits = hits + 1 end
  end
  assert(hits == 1, "expected one error containing '" .. text .. "' in:\n" .. table.concat(errs, "\n"))
end

after_each(function() fake.cleanup() end)

describe("runtime.load config", function()
  it("starts from defaults.lua", function()
    local hooks = must_load(policy "")
    assert.same(require "aivo.defaults", {
      server = { max_message_size = 1048576, ping_interval = 20, idle_timeout = 50,
                 sendq_max_bytes = 4194304, sendq_max_messages = 4096, drain_timeout = 5,
                 max_inflight_bytes = 67108864, max_sendq_total_bytes = 1073741824 },
      rooms = { max_per_conn = 100 },
      lua = { instruction_budget = 10000000, memory_limit_mb = 128, jit = false,
              call_timeout_ms = 1000, load_timeout_ms = 2000 },
      auth = { required = true, alg = "HS256", leeway = 30, issuer = "", audience = "", cookie = "",
               query = true, refresh_grace = 30, keys = {} },
      origins = { allowed = "http://localhost:3000", require = false },
      connections = { per_ip_per_second = 0, max_per_ip = 0, max_per_user = 0 },
      quality = { check_interval = 10, pong_timeout = 5, stability_window = 300 },
      socketio = { ping_interval = 25000, ping_timeout = 20000, connect_timeout = 45000,
                   upgrade_timeout = 10000, max_payload = 1000000, token_field = "token",
                   recovery = { max_disconnection_ms = 0 } },
      history = { max_streams = 10000, max_total_bytes = 67108864, max_stream_bytes = 1048576,
                  max_stream_len = 1000, max_message_bytes = 65536 },
      store = { max_bytes = 67108864, max_value_bytes = 65536, max_keys = 10000 },
      redis = { url = "", host = "", port = 6379, db = 0, prefix = "aivo:", required = false,
                connect_timeout = 2000, command_timeout = 2000, presence_ttl = 30 },
    })
    assert.equal(20, hooks.config.server.ping_interval)
    assert.equal(false, hooks.config.lua.jit)
  end)

  it("layers defaults < policy < env < --set, last --set winning", function()
    local p = policy [[config = { server = { ping_interval = 30, idle_timeout = 60, drain_timeout = 7 },
                                 rooms = { max_per_conn = 5 } }]]
    local hooks = must_load(p, nil,
      { set("server.idle_timeout", "70"), set("rooms.max_per_conn", "8"), set("rooms.max_per_conn", "9") },
      { AIVO_SERVER_PING_INTERVAL = "40", AIVO_ROOMS_MAX_PER_CONN = "6" })
    local c = hooks.config
    assert.equal(1048576, c.server.max_message_size) -- default
    assert.equal(7, c.server.drain_timeout)          -- policy
    assert.equal(40, c.server.ping_interval)         -- env over policy
    assert.equal(70, c.server.idle_timeout)          -- --set over policy
    assert.equal(9, c.rooms.max_per_conn)            -- --set over env, last one wins
  end)

  it("keeps policy-only keys and lets env and --set reach them", function()
    local p = policy [[config = { ratelimit = { per_minute = 100, key = "conn" } }]]
    local hooks = must_load(p, nil, { set("ratelimit.key", "user") },
      { AIVO_RATELIMIT_PER_MINUTE = "50" })
    assert.same({ per_minute = 50, key = "user" }, hooks.config.ratelimit)
  end)

  it("does not modify the policy's own config table", function()
    local dir = fake.tree({ ["p.lua"] = policy [[config = { extra = { n = 1 } }]] })
    local first = assert(runtime.load(dir .. "/p.lua", { set("extra.n", "2") }))
    local second = assert(runtime.load(dir .. "/p.lua"))
    assert.equal(2, first.config.extra.n)
    assert.equal(1, second.config.extra.n)
    assert.equal(100, require("aivo.defaults").rooms.max_per_conn)
  end)

  it("coerces override strings to the type of the value they replace", function()
    local p = policy [[config = { app = { title = "x", on = false, off = true, ratio = 0.5 } }]]
    local hooks = must_load(p, nil, {
      set("app.title", "42"), set("app.on", "YES"), set("app.off", "0"), set("app.ratio", "1.25"),
      set("lua.jit", "true"),
    })
    assert.same({ title = "42", on = true, off = false, ratio = 1.25 }, hooks.config.app)
    assert.equal(true, hooks.config.lua.jit)
  end)

  it("reports values that do not coerce, from --set and env alike", function()
    local hooks, errs = load(policy "", nil,
      { set("server.ping_interval", "abc"), set("lua.jit", "maybe") },
      { AIVO_SERVER_IDLE_TIMEOUT = "soon" })
    assert.is_nil(hooks)
    assert.equal(3, #errs)
    has_error(errs, "--set server.ping_interval: 'abc' is not a number")
    has_error(errs, "--set lua.jit: 'maybe' is not a boolean")
    has_error(errs, "AIVO_SERVER_IDLE_TIMEOUT: 'soon' is not a number")
  end)

  it("reports --set of an unknown key or of a whole section", function()
    local _, errs = load(policy "", nil,
      { set("unknown.key", "1"), set("server.nope", "1"), set("server", "1") })
    assert.equal(3, #errs)
    has_error(errs, "--set unknown.key: unknown config key")
    has_error(errs, "--set server.nope: unknown config key")
    has_error(errs, "--set server: only number, boolean and string keys can be set")
  end)

  it("ignores env variables outside the config", function()
    local hooks = must_load(policy "", nil, nil, { AIVO_NOPE = "1", AIVO_SERVER = "2" })
    assert.is_nil(hooks.config.nope)
    assert.is_table(hooks.config.server)
  end)

  it("does not apply a secret-looking variable and warns that it was not", function()
    local hooks = must_load(policy [[config = { svc = { api_key = "none", name = "x" } }]], nil, nil,
      { AIVO_SVC_API_KEY = "s3cret", AIVO_SVC_NAME = "y" })
    assert.equal("none", hooks.config.svc.api_key)
    assert.equal("y", hooks.config.svc.name)
    local warned
    for _, l in ipairs(fake.logs) do
      if l.level == "warn" and l.message:find("AIVO_SVC_API_KEY is set but not applied", 1, true) then
        warned = l.message
      end
    end
    assert.truthy(warned)
    assert.falsy(warned:find("s3cret", 1, true))
  end)

  it("reports a policy config value of the wrong type", function()
    local _, errs, dir = load(policy [[config = { server = { ping_interval = "20" } }]])
    assert.same({ dir .. "/policy.lua: config.server.ping_interval must be a number, got string" }, errs)
  end)

  it("replaces lists whole instead of merging them", function()
    local plug = plugin [[name = "p", config = { origins = { "a", "b", "c" } }]]
    local hooks = must_load(policy [[plugins = { "p" }, config = { p = { origins = { "z" } } }]],
      { p = plug })
    assert.same({ "z" }, hooks.config.p.origins)
  end)

  it("sets gw.config to the merged config", function()
    local hooks = must_load(policy "config = { mine = { v = 1 } }")
    assert.equal(hooks.config, gw.config)
    assert.equal(1, gw.config.mine.v)
  end)
end)

describe("runtime.load policy shape", function()
  it("names an unknown policy key", function()
    local hooks, errs, dir = load(policy [[mesage = function() end]])
    assert.is_nil(hooks)
    assert.same({ dir .. "/policy.lua:3: unknown policy key 'mesage'" }, errs)
  end)

  it("accepts the reserved keys with the right types only", function()
    assert.is_table((must_load(policy [[
      name = "p", auth = function() end, limit = function() end, route = function() end,
      replay = { { channel = "room:*", ttl = 60 } }, quality = { good = 150 }]])))
    local _, errs = load(policy [[quality = function() end, auth = "yes", connect = 1]])
    assert.equal(3, #errs)
    has_error(errs, "policy key 'quality' must be a table, got function")
    has_error(errs, "policy key 'auth' must be a function, got string")
    has_error(errs, "policy key 'connect' must be a function, got number")
  end)

  it("requires gw.policy", function()
    local _, errs, dir = load("return { plugins = {} }")
    assert.same({ dir .. "/policy.lua: a policy file must return gw.policy { ... }, got table" }, errs)
    _, errs = load("local x = 1")
    has_error(errs, "must return gw.policy { ... }, got nil")
  end)

  it("reports syntax and load-time errors with file:line", function()
    local _, errs, dir = load("local gw = require 'aivo'\nreturn gw.policy {\n  name = ,\n}")
    assert.equal(1, #errs)
    assert.matches(dir .. "/policy.lua:3:", errs[1], 1, true)
    _, errs, dir = load("local x = nil\n\nreturn x.y")
    assert.matches(dir .. "/policy.lua:3: attempt to index", errs[1], 1, true)
  end)

  it("runs policies in the read-only sandbox", function()
    local _, errs = load("answer = 42\nreturn nil")
    has_error(errs, "assignment to global 'answer'")
  end)

  it("collects every error instead of stopping at the first", function()
    local p = policy [[mesage = 1, plugins = { "missing", "bad", "boom" }, config = { lua = { jit = 1 } }]]
    local _, errs, dir = load(p, {
      bad = plugin [[name = "bad", on_mesage = function() end]],
      boom = plugin [[name = "boom", init = function() error("no key") end]],
    }, { set("nope", "1") })
    assert.equal(6, #errs)
    has_error(errs, "unknown policy key 'mesage'")
    has_error(errs, "plugin 'missing' not found in: " .. dir .. "/plugins, " .. dir)
    has_error(errs, dir .. "/plugins/bad.lua:3: unknown plugin key 'on_mesage'") -- the line, as the core's key_line finds it
    has_error(errs, dir .. "/plugins/boom.lua: init failed: ")
    has_error(errs, "config.lua.jit must be a boolean, got number")
    has_error(errs, "--set nope: unknown config key")
  end)
end)

describe("runtime.load plugins", function()
  it("reports an unknown plugin with where it looked", function()
    local _, errs, dir = load(policy [[plugins = { "nope" }]])
    assert.same({ ("%s/policy.lua: plugin 'nope' not found in: %s/plugins, %s, %s/none")
      :format(dir, dir, dir, dir) }, errs)
  end)

  it("reports a bad plugin shape", function()
    local _, errs, dir = load(policy [[plugins = { "a", "b", "c", 7 }]], {
      a = plugin [[priority = "high", events = { ping = true }]],
      b = "return { name = 'b' }",
      c = plugin [[name = "c", events = { [1] = function() end }]],
    })
    assert.equal(6, #errs)
    has_error(errs, dir .. "/plugins/a.lua:3: plugin key 'priority' must be a number, got string")
    has_error(errs, dir .. "/plugins/a.lua: plugin key 'name' must be a non-empty string")
    has_error(errs, dir .. "/plugins/a.lua: events[\"ping\"] must map an event name to a function, got boolean")
    has_error(errs, dir .. "/plugins/b.lua: a plugin file must return gw.plugin { ... }, got table")
    has_error(errs, dir .. "/plugins/c.lua: events[\"1\"] must map an event name to a function")
    has_error(errs, "plugins[4] must be a plugin name, got number")
  end)

  it("reports a plugin listed twice", function()
    local _, errs = load(policy [[plugins = { "a", "a" }]], { a = plugin [[name = "a"]] })
    assert.same(1, #errs)
    has_error(errs, "plugin 'a' is listed twice")
  end)

  it("reports init failure as '<plugin file>: init failed: <err>'", function()
    local _, errs, dir = load(policy [[plugins = { "p" }]],
      { p = plugin [[name = "p", init = function(cfg) error("bad secret", 0) end]] })
    assert.same({ dir .. "/plugins/p.lua: init failed: bad secret" }, errs)
  end)

  it("passes init the plugin config: plugin defaults < policy < env < --set", function()
    _G.captured = {}
    local hooks = must_load(policy [[plugins = { "p" }, config = { p = { b = 20, c = 30, d = 40 } }]],
      { p = plugin [[name = "p", config = { a = 1, b = 2, c = 3, d = 4 },
                     init = function(cfg) captured[1] = cfg end]] },
      { set("p.d", "4000") }, { AIVO_P_C = "300", AIVO_P_D = "400" })
    assert.same({ a = 1, b = 20, c = 300, d = 4000 }, _G.captured[1])
    assert.equal(hooks.config.p, _G.captured[1])
    _G.captured = nil
  end)

  it("lists plugins by priority, highest first, ties in list order", function()
    local hooks, _, dir = load(policy [[plugins = { "low", "tie1", "high", "tie2" }]], {
      low = plugin [[name = "low", version = "0.1.0"]],
      tie1 = plugin [[name = "tie1", priority = 50]],
      high = plugin [[name = "high", priority = 100]],
      tie2 = plugin [[name = "tie2", priority = 50]],
    })
    assert.same({
      { name = "high", version = "0.0.0", priority = 100, path = dir .. "/plugins/high.lua" },
      { name = "tie1", version = "0.0.0", priority = 50, path = dir .. "/plugins/tie1.lua" },
      { name = "tie2", version = "0.0.0", priority = 50, path = dir .. "/plugins/tie2.lua" },
      { name = "low", version = "0.1.0", priority = 0, path = dir .. "/plugins/low.lua" },
    }, hooks.plugins)
  end)
end)

describe("hooks.on_message", function()
  local conn
  before_each(function() _G.trace = {} end)
  after_each(function() _G.trace = nil end)

  local function chain(policy_body, plugins)
    local hooks = must_load(policy(policy_body), plugins)
    conn = fake.conn()
    return hooks
  end

  it("calls handlers by priority until one gives a verdict", function()
    local hooks = chain([[plugins = { "a", "b", "c" }]], {
      a = tracer("a", 1, "return gw.DONE, { from = 'a' }"),
      b = tracer("b", 3),
      c = tracer("c", 2, "return gw.DONE, { from = 'c' }"),
    })
    local ok, ack = hooks.on_message(conn, { event = "x" })
    assert.is_true(ok)
    assert.same({ from = "c" }, ack)
    assert.same({ "b", "c" }, _G.trace)
  end)

  it("turns gw.REJECT into false, code, reason", function()
    local hooks = chain([[plugins = { "a", "b" }]], {
      a = tracer("a", 2, "return gw.REJECT, 'nope', 'not today'"),
      b = tracer("b", 1, "return gw.DONE"),
    })
    assert.same({ false, "nope", "not today" }, { hooks.on_message(conn, { event = "x" }) })
    assert.same({ "a" }, _G.trace)
  end)

  it("answers unknown_event when nobody handles the event", function()
    local hooks = chain([[plugins = { "a" }]], { a = tracer("a", 1) })
    assert.same({ false, "unknown_event", "no handler for event 'what'" },
      { hooks.on_message(conn, { event = "what" }) })
    assert.same({ "a" }, _G.trace)
  end)

  it("routes per-event handlers and runs a plugin's catch-all after them", function()
    local hooks = chain([[plugins = { "a", "b" }]], {
      a = plugin [[name = "a", priority = 2,
        events = { ping = function() trace[#trace + 1] = "a.ping" end },
        on_message = function() trace[#trace + 1] = "a.all" end]],
      b = plugin [[name = "b", priority = 1,
        events = { ping = function() trace[#trace + 1] = "b.ping"; return gw.DONE, "pong" end }]],
    })
    assert.same({ true, "pong" }, { hooks.on_message(conn, { event = "ping" }) })
    assert.same({ "a.ping", "a.all", "b.ping" }, _G.trace)
    _G.trace = {}
    assert.is_false((hooks.on_message(conn, { event = "other" })))
    assert.same({ "a.all" }, _G.trace)
  end)

  it("runs the policy's message hook first", function()
    local hooks = chain([[plugins = { "a" },
      message = function(conn, msg)
        trace[#trace + 1] = "policy"
        if msg.event == "blocked" then return gw.REJECT, "forbidden", "blocked" end
      end]], { a = tracer("a", 1, "return gw.DONE") })
    assert.same({ false, "forbidden", "blocked" }, { hooks.on_message(conn, { event = "blocked" }) })
    assert.same({ "policy" }, _G.trace)
    assert.same({ true }, { hooks.on_message(conn, { event = "x" }) })
    assert.same({ "policy", "policy", "a" }, _G.trace)
  end)

  it("raises on a return value that is not a verdict", function()
    local hooks = chain([[plugins = { "a" }]], { a = tracer("a", 1, "return true") })
    assert.has_error(function() hooks.on_message(conn, { event = "x" }) end,
      "plugin 'a' on_message returned true; return gw.DONE, gw.REJECT or nothing")
  end)

  it("lets handler errors through with their file:line", function()
    local hooks, _, dir = load(policy [[plugins = { "a" }]],
      { a = plugin [[name = "a", on_message = function() error("kaput") end]] })
    local ok, err = pcall(hooks.on_message, fake.conn(), { event = "x" })
    assert.is_false(ok)
    assert.equal(dir .. "/plugins/a.lua:3: kaput", err)
  end)
end)

describe("hooks.on_auth", function()
  it("without an auth hook: the identity is a string sub, else none", function()
    local hooks = must_load(policy "")
    assert.same({ true, "ann" }, { hooks.on_auth({ sub = "ann" }, {}) })
    assert.same({ true }, { hooks.on_auth(nil, {}) })
    assert.same({ true }, { hooks.on_auth({ sub = 12 }, {}) })
    assert.same({ true }, { hooks.on_auth({ sub = "" }, {}) })
  end)

  it("takes the identity or a refusal from the auth hook", function()
    local hooks = must_load(policy [[auth = function(claims, req)
      if req.path == "/x" then return end
      if claims.role ~= "admin" then return false, "not_admin", "admins only" end
      if claims.alias then return true, claims.alias end
      return true, { user = "admin:" .. claims.sub }
    end]])
    assert.same({ true, "admin:ann" }, { hooks.on_auth({ sub = "ann", role = "admin" }, {}) })
    assert.same({ true, "root" }, { hooks.on_auth({ sub = "ann", role = "admin", alias = "root" }, {}) })
    assert.same({ false, "not_admin", "admins only" }, { hooks.on_auth({ sub = "bob" }, {}) })
    assert.same({ false, "unauthorized", "authentication failed" }, { hooks.on_auth({}, { path = "/x" }) })
  end)

  it("raises on an identity that is not a non-empty string", function()
    local hooks = must_load(policy [[auth = function() return true, { user = {} } end]])
    assert.has_error(function() hooks.on_auth({}, {}) end,
      "policy 'auth' hook: user must be a non-empty string, got table")
  end)

  it("hands its identity to connect as req.user; connect may keep or replace it", function()
    local hooks = must_load(policy [[connect = function(conn, req)
      if req.user == "rename-me" then return true, "renamed" end
      return true
    end]])
    assert.same({ true, "ann" }, { hooks.on_connect(fake.conn(), { user = "ann" }) })
    assert.same({ true, "renamed" }, { hooks.on_connect(fake.conn(), { user = "rename-me" }) })
    assert.same({ true, "anon-4" }, { hooks.on_connect(fake.conn({ id = 4 }), {}) })
  end)
end)

describe("hooks.on_connect and on_disconnect", function()
  it("names a connection anon-<id> without a connect hook", function()
    local hooks = must_load(policy "")
    assert.same({ true, "anon-7" }, { hooks.on_connect(fake.conn({ id = 7 }), {}) })
    assert.same({ true, "anon-9007199254740991" },
      { hooks.on_connect(fake.conn({ id = 2 ^ 53 - 1 }), {}) })
  end)

  it("takes the identity from the connect hook", function()
    local hooks = must_load(policy [[connect = function(conn, req)
      return true, { user = req.auth and req.auth.name }
    end]])
    assert.same({ true, "alice" }, { hooks.on_connect(fake.conn({ id = 1 }), { auth = { name = "alice" } }) })
    assert.same({ true, "anon-2" }, { hooks.on_connect(fake.conn({ id = 2 }), {}) })
  end)

  it("refuses when the connect hook does not return true", function()
    local hooks = must_load(policy [[connect = function(conn, req)
      if req.path == "/none" then return end
      return false, "unauthorized", "token expired"
    end]])
    assert.same({ false, "unauthorized", "token expired" },
      { hooks.on_connect(fake.conn(), { path = "/ws" }) })
    assert.same({ false, "forbidden", "connection refused" },
      { hooks.on_connect(fake.conn(), { path = "/none" }) })
  end)

  it("raises on an identity that is not a non-empty string", function()
    local hooks = must_load(policy [[connect = function() return true, { user = 42 } end]])
    assert.has_error(function() hooks.on_connect(fake.conn(), {}) end,
      "policy 'connect' hook: user must be a non-empty string, got number")
  end)

  it("runs plugin on_connect handlers, which see req.user and may refuse", function()
    local hooks = must_load(policy [[plugins = { "gate" },
      connect = function(conn, req) return true, { user = req.headers.user } end]], {
      gate = plugin [[name = "gate", on_connect = function(conn, req)
        if req.user == "mallory" then return gw.REJECT, "banned", "go away" end
      end]],
    })
    assert.same({ true, "bob" }, { hooks.on_connect(fake.conn(), { headers = { user = "bob" } }) })
    assert.same({ false, "banned", "go away" },
      { hooks.on_connect(fake.conn(), { headers = { user = "mallory" } }) })
  end)

  it("stops running plugin on_connect handlers at gw.DONE", function()
    _G.trace = {}
    local hooks = must_load(policy [[plugins = { "a", "b" }]], {
      a = plugin [[name = "a", priority = 2,
        on_connect = function() trace[#trace + 1] = "a"; return gw.DONE end]],
      b = plugin [[name = "b", priority = 1,
        on_connect = function() trace[#trace + 1] = "b"; return gw.REJECT, "no" end]],
    })
    assert.same({ true, "anon-3" }, { hooks.on_connect(fake.conn({ id = 3 }), {}) })
    assert.same({ "a" }, _G.trace)
    _G.trace = nil
  end)

  it("calls the policy's and every plugin's disconnect handlers", function()
    _G.trace = {}
    local hooks = must_load(policy [[plugins = { "a", "b" },
      disconnect = function(conn, reason) trace[#trace + 1] = "policy " .. reason end]], {
      a = plugin [[name = "a", on_disconnect = function(conn, r) trace[#trace + 1] = "a " .. r end]],
      b = plugin [[name = "b", priority = 5,
        on_disconnect = function(conn, r) trace[#trace + 1] = "b " .. r; return gw.DONE end]],
    })
    hooks.on_disconnect(fake.conn(), "closed")
    assert.same({ "policy closed", "b closed", "a closed" }, _G.trace)
    _G.trace = nil
  end)
end)

describe("runtime.load namespaces (Socket.IO)", function()
  it("keeps the declared namespaces for the core, none by default", function()
    assert.same({}, must_load(policy "").namespaces)
    assert.same({ "/admin", "/chat" }, must_load(policy [[namespaces = { "/admin", "/chat" }]]).namespaces)
  end)

  it("refuses names that are not '/name' and values that are not a list", function()
    local _, errs = load(policy [[namespaces = { "admin" }]])
    has_error(errs, "namespaces must be a list of names starting with '/'")
    _, errs = load(policy [[namespaces = { "/a,b" }]])
    has_error(errs, "found /a,b")
    _, errs = load(policy [[namespaces = "/admin"]])
    has_error(errs, "policy key 'namespaces' must be a table, got string")
  end)
end)
