-- aivo: the module policy and plugin authors use (`local gw = require "aivo"`).
-- It only wraps aivo.core (C) so that handlers work with rooms, users and conns
-- instead of raw ids; the chain itself lives in aivo.runtime.
local core = require "aivo.core"

local format, select, type = string.format, select, type

-- The gateway's own codec (exact numbers, [] stays an array); plain lua-cjson when
-- these modules run outside the gateway, e.g. under busted.
local has_json, json = pcall(require, "aivo.json")
if not has_json then json = require "cjson" end

local gw = {
  -- Verdicts: unique tables, so no plain return value can be mistaken for one.
  DONE = setmetatable({}, { __tostring = function() return "gw.DONE" end, __metatable = false }),
  REJECT = setmetatable({}, { __tostring = function() return "gw.REJECT" end, __metatable = false }),
  json = json,
  -- gw.config, the merged config, is set by aivo.runtime when the policy loads.
  now = core.now,
  new_id = core.new_id,
  room_size = core.room_size,
  -- Socket.IO (docs/socketio.md): gw.args(a, b) sends several arguments, gw.binary(bytes)
  -- sends bytes as a binary attachment. Plain stand-ins outside the gateway (busted).
  args = json.args or function(...) return { ... } end,
  binary = json.binary or function(s) return s end,
}

-- Weak keys: marking a table must not keep an old generation's policy alive.
local kinds = setmetatable({}, { __mode = "k" })

local function mark(kind)
  return function(t)
    if type(t) ~= "table" then
      error(format("gw.%s expects a table, got %s", kind, type(t)), 2)
    end
    kinds[t] = kind
    return t
  end
end

gw.policy = mark("policy")
gw.plugin = mark("plugin")

-- "policy", "plugin" or nil: what gw.policy / gw.plugin marked t as.
function gw.kind(t)
  return kinds[t]
end

-- opts.except: a conn or a conn id that must not receive the message.
function gw.publish(room, event, data, opts)
  local except = opts and opts.except
  if except ~= nil and type(except) ~= "number" then
    except = except.id
  end
  return core.publish(room, event, data, except)
end

-- Who is in room on every gateway (docs/policy-api.md): fn(result) later, from the loop,
-- with result = {connections, users, members = {{node, conn, user}}, more}, or fn(nil, err).
-- Returns true, or nil and an error when the question cannot be asked (fn never runs then).
function gw.presence(room, fn, opts)
  return core.presence(room, fn, opts and opts.limit)
end

-- The core joins every connection to "user:<identity>" once it is connected.
function gw.send_user(user, event, data)
  return core.publish("user:" .. user, event, data)
end

local function logger(level)
  return function(fmt, ...)
    -- Without arguments the text is logged as is, so a stray "%" cannot raise.
    if select("#", ...) > 0 then
      core.log(level, format(fmt, ...))
    else
      core.log(level, tostring(fmt))
    end
  end
end

gw.log = {
  debug = logger("debug"),
  info = logger("info"),
  warn = logger("warn"),
  error = logger("error"),
}

-- Metrics declared from Lua live in the gateway, so they survive policy reloads;
-- declaring the same name again (after a reload) returns the same metric.
--   local hits = gw.metrics.counter { name = "app_hits_total", help = "...", labels = { "room" } }
--   hits:inc(1, "lobby")
local Metric = {}
Metric.__index = Metric
Metric.__metatable = false -- shared by every metric object: getmetatable() must not reach it
function Metric:inc(v, ...) core.metric_update(self.handle, "add", v or 1, ...) end
function Metric:dec(v, ...) core.metric_update(self.handle, "add", -(v or 1), ...) end
function Metric:set(v, ...) core.metric_update(self.handle, "set", v, ...) end
function Metric:observe(v, ...) core.metric_update(self.handle, "observe", v, ...) end

local function declare(kind)
  return function(spec)
    if type(spec) ~= "table" or type(spec.name) ~= "string" then
      error(format("gw.metrics.%s { name = ..., help = ..., labels = {...} }", kind), 2)
    end
    local labels = spec.labels and table.concat(spec.labels, ",") or nil
    local handle, err = core.metric(kind, spec.name, spec.help or "", labels, spec.buckets)
    if not handle then error(format("metric '%s': %s", spec.name, err), 2) end
    return setmetatable({ handle = handle, name = spec.name }, Metric)
  end
end

gw.metrics = {
  counter = declare("counter"),
  gauge = declare("gauge"),
  histogram = declare("histogram"),
}

-- gw.json.array(t): t (default a new table) marked as a JSON array, so an empty one is
-- sent as [] rather than {}. Without the gateway's codec (busted) t is returned as is.
if json.array == nil then
  local array_mt = json.array_mt
  json.array = function(t)
    t = t or {}
    if array_mt then setmetatable(t, array_mt) end
    return t
  end
end

-- gw.store: the plugin store, kept in C so it survives reloads (docs/policy-api.md).
-- The C functions are handed out once; aivo.runtime binds gw.store to the plugin whose
-- handler is running, so every call names its own plugin and no other.
local store_c = core.store_api and core.store_api()
local running_plugin -- function() -> the running plugin's name, set by aivo.runtime

function gw.bind_store(fn)
  if running_plugin then error("gw.store is already bound to the runtime", 2) end
  running_plugin = fn
end

local function owner()
  local name = running_plugin and running_plugin()
  if not name then
    error("gw.store can only be used by a plugin (in its handlers or init)", 3)
  end
  if not store_c then error("gw.store is not available here", 3) end
  return name
end

-- A scope is a plain table of closures over (kind, id): no shared metatable a plugin could
-- reach and edit for every other plugin, and gw.store itself is frozen after the load
-- (core/policy/lua_vm.c gw_lua_vm_freeze_modules).
local function make_scope(kind, id, extra)
  local s = extra or {}
  function s.get(_, key) return store_c.get(owner(), kind, id, key) end
  function s.set(_, key, value, ttl) return store_c.set(owner(), kind, id, key, value, ttl) end
  function s.delete(_, key) return store_c.delete(owner(), kind, id, key) end
  function s.incr(_, key, by, ttl) return store_c.incr(owner(), kind, id, key, by, ttl) end
  function s.clear(_) return store_c.clear(owner(), kind, id) end
  function s.keys(_)
    local list = store_c.keys(owner(), kind, id)
    table.sort(list)
    return list
  end
  return s
end

local function scope(kind)
  return function(_, id)
    if type(id) ~= "string" or id == "" then
      error(format("gw.store:%s(name): name must be a non-empty string, got %s", kind, type(id)), 2)
    end
    return make_scope(kind, id)
  end
end

-- The plugin-wide scope, with :room(name) and :user(name) for the others.
gw.store = make_scope("plugin", "", { room = scope("room"), user = scope("user") })

return gw
