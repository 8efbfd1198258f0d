-- A test double of aivo.core (implemented in C in the gateway). Requiring it
-- installs it as "aivo.core", so require it before aivo or aivo.runtime.
--
-- It keeps connections, rooms and attributes like the core does, and records
-- what handlers did: fake.emits, fake.binaries, fake.publishes, fake.joins,
-- fake.leaves, fake.closes, fake.logs, and each conn's deliveries in
-- fake.outbox(conn). Call fake.reset() before each test. gw.presence callbacks run at
-- fake.run_presence() (the core runs them from the loop, never inside the call).
--
-- It also keeps a plugin store like the core's (gw.store: fake.store_entries()),
-- which survives runtime.load (a reload) but not fake.reset().
--
-- It works from the repository (busted at its root) and installed, from any folder
-- (`aivo-gw test`, docs/policy-api.md "Testing a plugin with busted").
local fake = {}

-- The repo root, from this file's path (tests/lua/helpers/fake_core.lua); installed
-- (share/aivo-gw/lua-test/helpers/) there is none, and paths are relative to the cwd.
local here = debug.getinfo(1, "S").source:sub(2)
fake.root = here:match("^(.*)/tests/lua/helpers/[^/]*$")

-- The plugin search path: `aivo-gw test` passes it in AIVO_TEST_PLUGIN_PATH (folders
-- separated by ':'), else the repository's plugins/ (or ./plugins).
local function default_plugin_path()
  local env, list = os.getenv("AIVO_TEST_PLUGIN_PATH"), {}
  if env and env ~= "" then
    for dir in env:gmatch("[^:]+") do list[#list + 1] = dir end
    return list
  end
  return { (fake.root or ".") .. "/plugins" }
end

local conns, rooms, next_conn, next_id
local buckets, refused_in_a_row
local tmpdirs = {}

-- Options: policy_dir and plugin_path (where find_plugin looks; plugin_path is
-- a folder or a list of folders, searched in order like --plugin-path), env (the
-- AIVO_* variables getenv sees), max_rooms (the per-connection cap) and store
-- (the store's bounds: {max_bytes =, max_value_bytes =, max_keys =}).
function fake.reset(opts)
  opts = opts or {}
  fake.policy_dir = opts.policy_dir or (fake.root and fake.root .. "/policies" or ".")
  local pp = opts.plugin_path or default_plugin_path()
  fake.plugin_path = type(pp) == "table" and pp or { pp }
  fake.env = opts.env or {}
  local st = opts.store or {}
  fake.store_limits = { max_bytes = st.max_bytes or 67108864, max_value_bytes = st.max_value_bytes or 65536,
                        max_keys = st.max_keys or 10000 }
  fake.reset_store()
  fake.max_rooms = opts.max_rooms or 100
  fake.time = 0
  fake.emits, fake.binaries, fake.publishes = {}, {}, {}
  fake.presence_calls = {}
  fake.joins, fake.leaves, fake.closes, fake.logs = {}, {}, {}, {}
  -- fake.metrics[name] = {kind =, values = {[labels joined by ","] = number}}; unlike the
  -- gateway's, these start afresh with every reset
  fake.metrics = {}
  conns, rooms, next_conn, next_id = {}, {}, 0, 0
  fake.reset_buckets()
end

local function open(id)
  local c = conns[id]
  if c and not c.closed then return c end
end

local function deliver(id, item)
  local c = conns[id]
  c.outbox[#c.outbox + 1] = item
end

function fake.emit(id, event, data)
  if not open(id) then return nil, "closed" end
  fake.emits[#fake.emits + 1] = { id = id, event = event, data = data }
  deliver(id, { event = event, data = data })
  return true
end

function fake.send_binary(id, bytes)
  if not open(id) then return nil, "closed" end
  fake.binaries[#fake.binaries + 1] = { id = id, data = bytes }
  deliver(id, { binary = true, data = bytes })
  return true
end

function fake.join(id, room)
  local c = open(id)
  if not c then return nil, "closed" end
  if type(room) ~= "string" or room == "" or #room > 200 then return nil, "bad_room" end
  if c.rooms[room] then return true end
  if c.nrooms >= fake.max_rooms then return nil, "too_many_rooms" end
  c.rooms[room], c.nrooms = true, c.nrooms + 1
  rooms[room] = rooms[room] or {}
  rooms[room][id] = true
  fake.joins[#fake.joins + 1] = { id = id, room = room }
  return true
end

function fake.leave(id, room)
  local c = open(id)
  if not c then return nil, "closed" end
  if not c.rooms[room] then return false end
  c.rooms[room], c.nrooms = nil, c.nrooms - 1
  rooms[room][id] = nil
  fake.leaves[#fake.leaves + 1] = { id = id, room = room }
  return true
end

function fake.in_room(id, room)
  local c = open(id)
  return c ~= nil and c.rooms[room] == true
end

function fake.rooms(id)
  local c = open(id)
  if not c then return nil, "closed" end
  local list = {}
  for room in pairs(c.rooms) do list[#list + 1] = room end
  table.sort(list)
  return list
end

function fake.publish(room, event, data, except_id)
  local n = 0
  for id in pairs(rooms[room] or {}) do
    if id ~= except_id then
      deliver(id, { event = event, data = data })
      n = n + 1
    end
  end
  fake.publishes[#fake.publishes + 1] =
    { room = room, event = event, data = data, except = except_id, count = n }
  return n
end

-- gw.presence: answered by fake.run_presence() (the core answers from the loop, never
-- inside the call); members are the fake rooms' connections on one node "local".
fake.presence_calls = {}
function fake.presence(room, fn, limit)
  assert(type(room) == "string" and type(fn) == "function", "presence(room, fn[, limit])")
  fake.presence_calls[#fake.presence_calls + 1] = { room = room, fn = fn, limit = limit or 100 }
  return true
end

function fake.run_presence()
  local calls = fake.presence_calls
  fake.presence_calls = {}
  for _, c in ipairs(calls) do
    local members, seen, users = {}, {}, 0
    for id in pairs(rooms[c.room] or {}) do
      if #members < c.limit then
        local user = conns[id] and conns[id].user
        members[#members + 1] = { node = "local", conn = id, user = user }
        if user and not seen[user] then seen[user], users = true, users + 1 end
      end
    end
    c.fn({ connections = #members, users = users, members = members, more = false })
  end
end

function fake.room_size(room)
  local n = 0
  for _ in pairs(rooms[room] or {}) do n = n + 1 end
  return n
end

-- Closing drops the connection at once (the core finishes it asynchronously).
function fake.close(id, code, reason)
  local c = open(id)
  if not c then return nil, "closed" end
  fake.closes[#fake.closes + 1] = { id = id, code = code, reason = reason }
  for room in pairs(c.rooms) do rooms[room][id] = nil end
  c.closed = true
  return true
end

function fake.conn_get(id, key)
  local c = open(id)
  if not c then return nil, "closed" end
  return c.attrs[key]
end

-- Attributes are strings in the core; anything else is a handler bug.
function fake.conn_set(id, key, value)
  if value ~= nil and type(value) ~= "string" then
    error("conn attribute '" .. tostring(key) .. "' must be a string or nil, got " .. type(value), 2)
  end
  local c = open(id)
  if not c then return nil, "closed" end
  c.attrs[key] = value
  return true
end

local LEVELS = { debug = true, info = true, warn = true, error = true }

function fake.log(level, message)
  if not LEVELS[level] then error("bad log level '" .. tostring(level) .. "'", 2) end
  fake.logs[#fake.logs + 1] = { level = level, message = message }
end

function fake.now()
  return fake.time
end

-- Unique and predictable: 32 hex chars counting up.
function fake.new_id()
  next_id = next_id + 1
  return string.format("%032x", next_id)
end

-- Like the gateway's sandbox: globals are read-only and io, debug, jit and
-- most of os are missing, so a spec fails where the gateway would.
local HIDDEN = { io = true, debug = true, jit = true, ffi = true, dofile = true,
                 loadfile = true, getfenv = true, setfenv = true, module = true }
local sandbox_os = { time = os.time, clock = os.clock, date = os.date }
local sandbox = setmetatable({}, {
  __index = function(_, k)
    if k == "os" then return sandbox_os end
    if not HIDDEN[k] then return _G[k] end
  end,
  __newindex = function(_, k)
    error("assignment to global '" .. tostring(k) .. "' (globals are read-only)", 2)
  end,
})

function fake.load_file(path)
  local chunk, err = loadfile(path, "t")
  if not chunk then return nil, err end
  return setfenv(chunk, sandbox)
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local function same_file(a, b)
  local function norm(p) return (p:gsub("/%./", "/"):gsub("^%./", "")) end
  return b ~= nil and norm(a) == norm(b)
end

-- policy_path (passed by aivo.runtime): the policy file itself is never its own plugin.
-- The first line of a file where `key =` is written (not `==`), as the core's key_line
-- finds it for load errors that name a table key; nil when there is none.
function fake.key_line(path, key)
  local f = io.open(path, "r")
  if not f then return nil end
  local n = 0
  for line in f:lines() do
    n = n + 1
    local from = 1
    while true do
      local s, e = line:find(key, from, true)
      if not s then break end
      local before, rest = line:sub(s - 1, s - 1), line:sub(e + 1)
      if not before:match("[%w_]") and not rest:match("^[%w_]") and rest:match("^%s*=[^=]") then
        f:close()
        return n
      end
      from = s + 1
    end
  end
  f:close()
  return nil
end

function fake.find_plugin(name, policy_path)
  local pd = fake.policy_dir
  local candidates = {
    pd .. "/plugins/" .. name .. ".lua", pd .. "/plugins/" .. name .. "/init.lua",
    pd .. "/" .. name .. ".lua", pd .. "/" .. name .. "/init.lua",
  }
  for _, dir in ipairs(fake.plugin_path) do
    candidates[#candidates + 1] = dir .. "/" .. name .. ".lua"
    candidates[#candidates + 1] = dir .. "/" .. name .. "/init.lua"
  end
  for _, path in ipairs(candidates) do
    if exists(path) and not same_file(path, policy_path) then return path end
  end
  return nil, string.format("plugin '%s' not found in: %s/plugins, %s, %s", name, pd, pd,
    table.concat(fake.plugin_path, ", "))
end

-- ---- the plugin store (core/policy/plugin_store.c): same bounds, errors and JSON values --------
local cjson = require "cjson"
local store, store_bytes, store_keys -- key -> {json =, expires =}; bytes; plugin -> count
local STORE_OVERHEAD = 64

function fake.reset_store()
  store, store_bytes, store_keys = {}, 0, {}
end

local function store_key(plugin, kind, id, key)
  local function name(v, what)
    if type(v) ~= "string" or v == "" or #v > 256 or v:find("\0", 1, true) then
      error("gw.store: " .. what .. " must be a string of 1..256 bytes without NUL", 3)
    end
    return v
  end
  name(plugin, "the plugin name")
  if kind ~= "plugin" and kind ~= "room" and kind ~= "user" then error("bad scope " .. tostring(kind), 3) end
  local prefix = plugin .. "\0" .. kind .. "\0" .. (kind == "plugin" and "" or name(id, "a " .. kind .. " name")) .. "\0"
  return prefix, key ~= nil and prefix .. name(key, "a key") or nil
end

local function drop(k)
  local e = store[k]
  store_bytes = store_bytes - (#k + #e.json + STORE_OVERHEAD)
  store_keys[e.plugin] = store_keys[e.plugin] - 1
  store[k] = nil
end

local function live(k)
  local e = store[k]
  if e and e.expires and e.expires <= fake.time then
    drop(k)
    return nil
  end
  return e
end

local function sweep()
  for k in pairs(store) do live(k) end
end

local function put(plugin, k, json, expires, keep_expiry)
  local lim = fake.store_limits
  if #json > lim.max_value_bytes then return nil, "too_large" end
  local e = live(k)
  local old = e and (#k + #e.json + STORE_OVERHEAD) or 0
  local new = #k + #json + STORE_OVERHEAD
  if not e and (store_keys[plugin] or 0) >= lim.max_keys then
    sweep()
    if (store_keys[plugin] or 0) >= lim.max_keys then return nil, "too_many_keys" end
  end
  if new > old and store_bytes - old + new > lim.max_bytes then
    sweep()
    e = live(k)
    old = e and (#k + #e.json + STORE_OVERHEAD) or 0
    if store_bytes - old + new > lim.max_bytes then return nil, "store_full" end
  end
  if not e then
    store_keys[plugin] = (store_keys[plugin] or 0) + 1
    e = { plugin = plugin }
    store[k] = e
  end
  store_bytes = store_bytes - old + new
  e.json = json
  if not keep_expiry or expires then e.expires = expires end
  return true
end

local function expiry(ttl)
  if ttl == nil then return nil end
  if type(ttl) ~= "number" or not (ttl > 0 and ttl <= 366 * 86400) then
    error("bad argument #6 to 'set' (ttl must be seconds in (0, 31622400])", 3)
  end
  return fake.time + ttl * 1000
end

local store_api = {}
function store_api.get(plugin, kind, id, key)
  local _, k = store_key(plugin, kind, id, key)
  local e = live(k)
  if e then return cjson.decode(e.json) end
end
function store_api.set(plugin, kind, id, key, value, ttl)
  local _, k = store_key(plugin, kind, id, key)
  if value == nil then
    if store[k] then drop(k) end
    return true
  end
  local expires = expiry(ttl)
  local ok, json = pcall(cjson.encode, value)
  if not ok then error("gw.store: cannot store this value as JSON: " .. tostring(json), 2) end
  return put(plugin, k, json, expires)
end
function store_api.delete(plugin, kind, id, key)
  local _, k = store_key(plugin, kind, id, key)
  if not live(k) then return false end
  drop(k)
  return true
end
function store_api.incr(plugin, kind, id, key, by, ttl)
  local _, k = store_key(plugin, kind, id, key)
  local e, n = live(k), 0
  if e then
    n = tonumber(e.json:match("^%-?%d[%d%.eE+-]*$") and e.json)
    if not n then return nil, "not_a_number" end
  end
  n = n + (by or 1)
  local text = (n % 1 == 0 and math.abs(n) < 2^53) and string.format("%d", n) or string.format("%.17g", n)
  local ok, err = put(plugin, k, text, expiry(ttl), true)
  if not ok then return nil, err end
  return n
end
function store_api.keys(plugin, kind, id)
  local prefix = store_key(plugin, kind, id)
  local list = {}
  for k in pairs(store) do
    if k:sub(1, #prefix) == prefix and live(k) then list[#list + 1] = k:sub(#prefix + 1) end
  end
  return list
end
function store_api.clear(plugin, kind, id)
  local prefix, n = store_key(plugin, kind, id), 0
  for k in pairs(store) do
    if k:sub(1, #prefix) == prefix then
      drop(k)
      n = n + 1
    end
  end
  return n
end

-- Handed out every time (unlike the core's, which gives them once): specs may load aivo
-- afresh.
function fake.store_api() return store_api end

-- Every live entry: { ["plugin/scope/id/key"] = value } (id empty for the plugin scope).
function fake.store_entries()
  local out = {}
  for k in pairs(store) do
    local e = live(k)
    if e then
      local plugin, kind, id, key = k:match("^(.-)%z(.-)%z(.-)%z(.*)$")
      out[plugin .. "/" .. kind .. "/" .. id .. "/" .. key] = cjson.decode(e.json)
    end
  end
  return out
end

function fake.metric(kind, name, help, labels)
  local m = fake.metrics[name]
  if m and m.kind ~= kind then return nil, "the name is taken by a metric of another type" end
  m = m or { kind = kind, name = name, values = {} }
  fake.metrics[name] = m
  return m
end

function fake.metric_update(m, op, v, ...)
  local key = table.concat({ ... }, ",")
  if op == "add" then m.values[key] = (m.values[key] or 0) + v
  elseif op == "set" then m.values[key] = v
  else m.values[key] = (m.values[key] or 0) + 1 end
end

-- Like the core's (core/policy/lua_api.c): a variable set in fake.env whose name ends in _KEY,
-- _TOKEN or holds SECRET / PASSWORD is refused as a secret (nil, "secret").
function fake.getenv(name)
  if name:sub(1, 5) == "AIVO_" or name == "CORS_ORIGIN" then
    local v = fake.env[name]
    if v ~= nil and (name:find("_KEY$") or name:find("_TOKEN$") or name:find("SECRET")
        or name:find("PASSWORD")) then
      return nil, "secret"
    end
    return v
  end
end

-- Rate limits like the core's (core/hub/ratelimit.c): a token bucket per key on
-- fake.time (ms), refilled continuously, all rules or nothing. Buckets survive
-- runtime.load (a reload) but not fake.reset(); fake.reset_buckets() empties them.
-- Each refusal is recorded in fake.refusals.
function fake.reset_buckets()
  buckets, refused_in_a_row, fake.refusals = {}, {}, {}
end

local RULE_FIELDS = { key = true, limit = true, window = true, cost = true, burst = true,
                      name = true, scope = true }

local function check_rule(r, i)
  if type(r) ~= "table" then error(("rate limit rule %d must be a table"):format(i), 0) end
  for k in pairs(r) do
    if not RULE_FIELDS[k] then error(("rate limit rule %d: unknown field '%s'"):format(i, tostring(k)), 0) end
  end
  if type(r.key) ~= "string" or r.key == "" then
    error(("rate limit rule %d: 'key' must be a string of 1..512 bytes"):format(i), 0)
  end
  for _, f in ipairs({ "limit", "window" }) do
    if type(r[f]) ~= "number" then error(("rate limit rule %d: '%s' must be a number"):format(i, f), 0) end
  end
  local cost, burst = r.cost or 1, r.burst or r.limit
  if r.limit <= 0 or r.window <= 0 or burst <= 0 or cost < 0 then
    error(("rate limit rule %d: limit, window and burst must be positive, cost not negative"):format(i), 0)
  end
  if cost > burst then
    error(("rate limit rule %d: cost %g is more than the burst %g"):format(i, cost, burst), 0)
  end
  return cost, burst, r.limit / (r.window * 1000)
end

function fake.ratelimit(id, rules)
  local list = rules.key ~= nil and { rules } or rules
  local levels, wait, worst = {}, 0, nil
  for i, r in ipairs(list) do
    local cost, burst, rate = check_rule(r, i)
    local b = buckets[r.key]
    local level = b and math.max(0, b.level - (fake.time - b.at) * rate) or 0
    levels[i] = level + cost
    if cost > 0 and level + cost > burst * (1 + 1e-9) then
      local w = (level + cost - burst) / rate
      if w > wait then wait, worst = w, i end
    end
  end
  if worst then
    local n = (refused_in_a_row[id] or 0) + 1
    refused_in_a_row[id] = n
    local retry = math.max(1, math.ceil(wait))
    fake.refusals[#fake.refusals + 1] = { id = id, rule = list[worst].name or ("#" .. worst), retry = retry }
    return false, retry, worst, n
  end
  for i, r in ipairs(list) do
    if (r.cost or 1) > 0 then buckets[r.key] = { level = levels[i], at = fake.time } end
  end
  refused_in_a_row[id] = 0
  return true
end

-- A conn like the gateway's. opts: id, user, protocol, remote, quality (the
-- class, default "unknown") and quality_info (the report table). With a user,
-- it is put in "user:<user>" as the core does once connect has finished.
function fake.conn(opts)
  opts = opts or {}
  next_conn = next_conn + 1
  local id = opts.id or next_conn
  conns[id] = { rooms = {}, nrooms = 0, attrs = {}, outbox = {} }
  local conn = {
    id = id, user = opts.user,
    protocol = opts.protocol or "ws", remote = opts.remote or "127.0.0.1",
    quality = opts.quality or "unknown",
    quality_info = opts.quality_info or { quality = opts.quality or "unknown", packetLoss = 0, stability = 100 },
  }
  function conn:emit(event, data) return fake.emit(self.id, event, data) end
  function conn:send_binary(bytes) return fake.send_binary(self.id, bytes) end
  function conn:join(room) return fake.join(self.id, room) end
  function conn:leave(room) return fake.leave(self.id, room) end
  function conn:in_room(room) return fake.in_room(self.id, room) end
  function conn:rooms() return fake.rooms(self.id) end
  function conn:get(key) return fake.conn_get(self.id, key) end
  function conn:set(key, value) return fake.conn_set(self.id, key, value) end
  function conn:close(code, reason) return fake.close(self.id, code, reason) end
  if opts.user then fake.join(id, "user:" .. opts.user) end
  return conn
end

-- What a conn was sent (emits, publishes and binary frames), oldest first.
function fake.outbox(conn)
  local c = conns[type(conn) == "table" and conn.id or conn]
  return c and c.outbox or {}
end

-- Writes files ({ ["rel/path.lua"] = source }) under a new temporary
-- directory and returns its path; fake.cleanup() removes them all.
function fake.tree(files)
  local dir = os.tmpname()
  os.remove(dir)
  tmpdirs[#tmpdirs + 1] = dir
  for rel, source in pairs(files) do
    local path = dir .. "/" .. rel
    os.execute("mkdir -p '" .. path:match("^(.*)/") .. "'")
    local f = assert(io.open(path, "w"))
    f:write(source)
    f:close()
  end
  return dir
end

function fake.cleanup()
  for _, dir in ipairs(tmpdirs) do os.execute("rm -rf '" .. dir .. "'") end
  tmpdirs = {}
end

fake.reset()
package.loaded["aivo.core"] = fake
package.preload["aivo.core"] = function() return fake end

return fake
