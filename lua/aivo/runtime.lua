-- aivo.runtime: loads and validates a policy, merges its config and builds the
-- hooks C calls. All the work happens here, at load time, so that a message
-- costs one table lookup and a loop over the handlers of its event.
--
-- Handlers are never called under pcall: an error must reach C intact, with
-- its file:line, to be logged and answered with "internal_error".
local core = require "aivo.core"
local gw = require "aivo"
local defaults = require "aivo.defaults"
local traffic = require "aivo.traffic"
local replay = require "aivo.replay"

local DONE, REJECT = gw.DONE, gw.REJECT
local format, pairs, ipairs, type, tostring, tonumber, pcall, error =
  string.format, pairs, ipairs, type, tostring, tonumber, pcall, error

local runtime = {}

-- What is running: the chain and index of the handler being called, and the event of the
-- message. Two upvalue writes per handler; they let an error name the plugin and the event
-- (hooks.blame, read by C after a failed call) and bind gw.store to the running plugin.
local running_chain, running_i, running_event

gw.bind_store(function()
  local chain = running_chain
  return chain and chain.plugins[running_i]
end)

-- Allowed keys and their types. route is reserved for a later feature:
-- type-checked now, otherwise ignored. replay: docs/offline-replay.md.
local POLICY_KEYS = {
  name = "string", config = "table", plugins = "table",
  connect = "function", message = "function", disconnect = "function",
  auth = "function", limit = "function", route = "function", replay = "table",
  quality = "table", limited = "function", quality_change = "function",
  namespaces = "table", -- Socket.IO namespaces besides "/" (docs/socketio.md)
}

local PLUGIN_KEYS = {
  name = "string", version = "string", priority = "number", config = "table",
  init = "function", events = "table",
  on_message = "function", on_connect = "function", on_disconnect = "function",
  on_quality_change = "function",
}

-- The old service's variable names, read when the AIVO_ one is not set.
local ENV_ALIASES = { ["origins.allowed"] = "CORS_ORIGIN" }

local BOOLEANS = {
  ["true"] = true, yes = true, ["1"] = true,
  ["false"] = false, no = false, ["0"] = false,
}

local function add(errs, fmt, ...)
  errs[#errs + 1] = format(fmt, ...)
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return t
end

-- Reports unknown keys and wrongly typed values of t, sorted so that the
-- same file always gives the same error list.
-- Where the key is written, when the core can tell ("file:12"), else "file".
local function where(file, k)
  local line = type(k) == "string" and core.key_line and core.key_line(file, k)
  return line and format("%s:%d", file, line) or file
end

local function check_keys(t, keys, what, file, errs)
  local found = {}
  for k, v in pairs(t) do
    local want = keys[k]
    if not want then
      found[#found + 1] = format("%s: unknown %s key '%s'", where(file, k), what, tostring(k))
    elseif type(v) ~= want then
      found[#found + 1] = format("%s: %s key '%s' must be a %s, got %s", where(file, k), what, k,
                                 want, type(v))
    end
  end
  table.sort(found)
  for _, e in ipairs(found) do errs[#errs + 1] = e end
end

-- Compiles and runs a policy or plugin file: true and what it returned, or
-- false after recording why (a raised error already carries file:line).
local function run_file(path, arg, errs)
  local chunk, err = core.load_file(path)
  if not chunk then
    errs[#errs + 1] = err
    return false
  end
  local ok, mod = pcall(chunk, arg)
  if not ok then
    errs[#errs + 1] = type(mod) == "string" and mod or format("%s: %s", path, tostring(mod))
    return false
  end
  return true, mod
end

local function check_plugin(p, path, errs)
  if type(p) ~= "table" or gw.kind(p) ~= "plugin" then
    add(errs, "%s: a plugin file must return gw.plugin { ... }, got %s", path, type(p))
    return false
  end
  local before = #errs
  check_keys(p, PLUGIN_KEYS, "plugin", path, errs)
  if type(p.name) ~= "string" or p.name == "" then
    add(errs, "%s: plugin key 'name' must be a non-empty string", path)
  end
  if type(p.events) == "table" then
    for event, fn in pairs(p.events) do
      if type(event) ~= "string" or type(fn) ~= "function" then
        add(errs, "%s: events[%s] must map an event name to a function, got %s",
          path, format("%q", tostring(event)), type(fn))
      end
    end
  end
  return #errs == before
end

-- Finds, runs and checks each listed plugin; returns them in call order:
-- priority descending, list order among equal priorities.
local function load_plugins(list, policy_path, errs)
  local plugins, seen = {}, {}
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k > #list or k % 1 ~= 0 then
      add(errs, "%s: plugins must be a list of plugin names (found key '%s')", policy_path, tostring(k))
    end
  end
  for i, name in ipairs(list) do
    local path, err = nil, nil
    if type(name) ~= "string" then
      err = format("plugins[%d] must be a plugin name, got %s", i, type(name))
    else
      path, err = core.find_plugin(name, policy_path) -- never the policy itself
    end
    if not path then
      add(errs, "%s: %s", policy_path, err)
    else
      local ok, p = run_file(path, name, errs)
      if ok and check_plugin(p, path, errs) then
        if seen[p.name] then
          add(errs, "%s: plugin '%s' is listed twice", policy_path, p.name)
        else
          seen[p.name] = true
          plugins[#plugins + 1] = { mod = p, path = path, index = i, priority = p.priority or 0 }
        end
      end
    end
  end
  table.sort(plugins, function(a, b)
    if a.priority ~= b.priority then return a.priority > b.priority end
    return a.index < b.index
  end)
  return plugins
end

-- Merges src over dst. A value must keep the type of the one it replaces;
-- lists are replaced whole rather than merged item by item.
local function merge(dst, src, prefix, file, errs)
  for k, v in pairs(src) do
    local key = prefix and prefix .. "." .. tostring(k) or tostring(k)
    local old = dst[k]
    if old ~= nil and type(old) ~= type(v) then
      add(errs, "%s: config.%s must be a %s, got %s", file, key, type(old), type(v))
    elseif type(v) == "table" and old ~= nil and v[1] == nil and old[1] == nil then
      merge(old, v, key, file, errs)
    else
      dst[k] = copy(v)
    end
  end
end

-- Turns an env or --set string into the type of the value it replaces.
local function coerce(old, s, label)
  local t = type(old)
  if t == "number" then
    local n = tonumber(s)
    if n == nil then return nil, format("%s: '%s' is not a number", label, s) end
    return n
  elseif t == "boolean" then
    local b = BOOLEANS[s:lower()]
    if b == nil then
      return nil, format("%s: '%s' is not a boolean (true/false/yes/no/1/0)", label, s)
    end
    return b
  elseif t == "string" then
    return s
  end
  return nil, format("%s: only number, boolean and string keys can be set (this one is a %s)", label, t)
end

-- Calls fn(table, key, dotted_key) for every number, boolean or string leaf.
local function each_leaf(t, prefix, fn)
  for k, v in pairs(t) do
    if type(k) == "string" then
      local key = prefix and prefix .. "." .. k or k
      local tv = type(v)
      if tv == "table" then
        each_leaf(v, key, fn)
      elseif tv == "number" or tv == "boolean" or tv == "string" then
        fn(t, k, key)
      end
    end
  end
end

-- The table holding a dotted key and the key's last part, or nil if unknown.
local function lookup(config, dotted)
  local t, name = config, nil
  for part in dotted:gmatch("[^.]+") do
    if name ~= nil then
      t = t[name]
      if type(t) ~= "table" then return nil end
    end
    name = part
  end
  if name == nil or t[name] == nil then return nil end
  return t, name
end

-- defaults.lua < plugin config defaults < policy config < AIVO_* env < --set.
local function build_config(policy_config, policy_path, plugins, overrides, errs)
  local config = copy(defaults)
  for _, p in ipairs(plugins) do
    local name, section = p.mod.name, copy(p.mod.config or {})
    if type(config[name]) == "table" then
      merge(section, config[name], name, p.path, errs)
    end
    config[name] = section
  end
  merge(config, policy_config, nil, policy_path, errs)

  each_leaf(config, nil, function(t, k, key)
    local var = "AIVO_" .. key:upper():gsub("[^%w]", "_")
    local s, refused = core.getenv(var)
    if refused then -- a secret-looking name never reaches Lua (docs/security.md)
      core.log("warn", format("%s is set but not applied: variables whose names look secret "
        .. "are not passed to policies; set %s in the policy's config or with --set", var, key))
    end
    if s == nil and ENV_ALIASES[key] then
      var = ENV_ALIASES[key]
      s = core.getenv(var)
    end
    if s ~= nil then
      local v, err = coerce(t[k], s, var)
      if err then errs[#errs + 1] = err else t[k] = v end
    end
  end)

  for _, o in ipairs(overrides or {}) do
    local label = "--set " .. o.key
    local t, k = lookup(config, o.key)
    if not t then
      add(errs, "%s: unknown config key", label)
    else
      local v, err = coerce(t[k], o.value, label)
      if err then errs[#errs + 1] = err else t[k] = v end
    end
  end
  return config
end

-- A handler chain is an array of functions plus, under .owners, who each one
-- belongs to, so that a bad verdict can be blamed on the right handler, and under
-- .plugins the plugin's name (nil for the policy's own hooks).
local function new_chain()
  return { owners = {}, plugins = {} }
end

local function push(chain, fn, owner, plugin)
  if fn then
    chain[#chain + 1] = fn
    chain.owners[#chain] = owner
    chain.plugins[#chain] = plugin
  end
end

-- A one-handler chain naming a hook of the policy, for blame.
local function policy_hook(what)
  local chain = new_chain()
  push(chain, true, what)
  return chain
end

local function bad_verdict(chain, i, v)
  error(format("%s returned %s; return gw.DONE, gw.REJECT or nothing",
    chain.owners[i], tostring(v)), 0)
end

-- One chain per event named in any plugin's events, plus one for all other
-- events; the policy's message hook heads each of them.
local function message_chains(policy, plugins)
  local names = {}
  for _, p in ipairs(plugins) do
    for event in pairs(p.mod.events or {}) do names[event] = true end
  end
  names[traffic.QUALITY_EVENT] = true
  local function build(event)
    local chain = new_chain()
    push(chain, policy.message, "policy 'message' hook")
    for _, p in ipairs(plugins) do
      local name = p.mod.name
      if event then
        push(chain, p.mod.events and p.mod.events[event],
          format("plugin '%s' events['%s']", name, event), name)
      end
      push(chain, p.mod.on_message, format("plugin '%s' on_message", name), name)
    end
    if event == traffic.QUALITY_EVENT then
      push(chain, traffic.quality_request, "built-in 'connection:quality' handler")
    end
    return chain
  end
  local chains = {}
  for event in pairs(names) do chains[event] = build(event) end
  return chains, build(nil)
end

local function plugin_chain(plugins, hook)
  local chain = new_chain()
  for _, p in ipairs(plugins) do
    push(chain, p.mod[hook], format("plugin '%s' %s", p.mod.name, hook), p.mod.name)
  end
  return chain
end

local function build_hooks(policy, plugins, config)
  local chains, others = message_chains(policy, plugins)
  local connects = plugin_chain(plugins, "on_connect")
  local disconnects = plugin_chain(plugins, "on_disconnect")
  local policy_connect, policy_disconnect = policy.connect, policy.disconnect
  local policy_auth = policy.auth

  local hooks = { config = config, plugins = {} }
  for i, p in ipairs(plugins) do
    hooks.plugins[i] = { name = p.mod.name, version = p.mod.version or "0.0.0", priority = p.priority, path = p.path }
  end

  local limiter = traffic.limiter(policy) -- nil without a limit hook
  local LIMIT, AUTH, CONNECT, DISCONNECT = policy_hook("policy 'limit' hook"),
    policy_hook("policy 'auth' hook"), policy_hook("policy 'connect' hook"),
    policy_hook("policy 'disconnect' hook")

  local qualities = new_chain()
  push(qualities, policy.quality_change, "policy 'quality_change' hook")
  for _, p in ipairs(plugins) do
    push(qualities, p.mod.on_quality_change, format("plugin '%s' on_quality_change", p.mod.name), p.mod.name)
  end
  function hooks.on_quality(conn, info)
    running_event = nil
    for i = 1, #qualities do
      running_chain, running_i = qualities, i
      qualities[i](conn, info)
    end
    running_chain = nil
  end

  -- After a failed call, C asks who was running: "plugin 'chat' events['say']" (or
  -- on_message with the event), and the plugin's name; nil when it was no handler.
  function hooks.blame()
    local chain = running_chain
    if not chain then return nil end
    local who = chain.owners[running_i]
    if running_event ~= nil and not who:find("events[", 1, true) then
      who = format("%s (event '%s')", who, tostring(running_event))
    end
    return who, chain.plugins[running_i]
  end

  function hooks.on_message(conn, msg)
    running_event = msg.event
    if limiter then -- before any handler: a refused message costs no more Lua
      running_chain, running_i = LIMIT, 1
      local ok, code, message, retry = limiter(conn, msg)
      if not ok then
        running_chain = nil
        return false, code, message, retry
      end
    end
    local chain = chains[msg.event] or others
    for i = 1, #chain do
      running_chain, running_i = chain, i
      local v, a, b = chain[i](conn, msg)
      if v ~= nil then
        if v == DONE then running_chain = nil return true, a end
        if v == REJECT then running_chain = nil return false, a or "rejected", b or "request rejected" end
        bad_verdict(chain, i, v)
      end
    end
    running_chain = nil
    -- control characters escaped: a NUL would cut the text where C reads it
    local name = tostring(msg.event):gsub("[%z\1-\31\127]", function(ch) return format("\\x%02x", ch:byte()) end)
    return false, "unknown_event", format("no handler for event '%s'", name)
  end

  -- auth(claims, req): claims are verified in C (nil when no token was required and none
  -- came). Returns true and the identity (or nil), or false, code, reason.
  function hooks.on_auth(claims, req)
    local user
    running_chain, running_event = nil, nil
    if policy_auth then
      running_chain, running_i = AUTH, 1
      local ok, res, reason = policy_auth(claims, req)
      if ok ~= true then
        return false, res or "unauthorized", reason or "authentication failed"
      end
      if type(res) == "table" then user = res.user else user = res end
      if user ~= nil and (type(user) ~= "string" or user == "") then
        error(format("policy 'auth' hook: user must be a non-empty string, got %s", type(user)), 0)
      end
    elseif type(claims) == "table" and type(claims.sub) == "string" and claims.sub ~= "" then
      user = claims.sub
    end
    running_chain = nil
    return true, user
  end

  function hooks.on_connect(conn, req)
    local user = req.user -- chosen by the auth hook, if any
    running_chain, running_event = nil, nil
    if policy_connect then
      running_chain, running_i = CONNECT, 1
      local ok, res, reason = policy_connect(conn, req)
      if ok ~= true then
        return false, res or "forbidden", reason or "connection refused"
      end
      local named
      if type(res) == "table" then named = res.user else named = res end
      if named ~= nil and (type(named) ~= "string" or named == "") then
        error(format("policy 'connect' hook: user must be a non-empty string, got %s", type(named)), 0)
      end
      user = named or user -- no name from connect: keep the auth hook's
    end
    user = user or format("anon-%d", conn.id)
    -- conn.user is only set once this hook has returned; plugins see it here.
    req.user = user
    for i = 1, #connects do
      running_chain, running_i = connects, i
      local v, code, reason = connects[i](conn, req)
      if v ~= nil then
        if v == DONE then break end
        if v == REJECT then
          running_chain = nil
          return false, code or "forbidden", reason or "connection refused"
        end
        bad_verdict(connects, i, v)
      end
    end
    running_chain = nil
    return true, user
  end

  function hooks.on_disconnect(conn, reason)
    running_event = nil
    if policy_disconnect then
      running_chain, running_i = DISCONNECT, 1
      policy_disconnect(conn, reason)
    end
    for i = 1, #disconnects do
      running_chain, running_i = disconnects, i
      disconnects[i](conn, reason)
    end
    running_chain = nil
  end

  return hooks
end

-- Returns the hooks table, or nil and every error found ("file:line: message",
-- or "file: message" when no line is known).
function runtime.load(policy_path, overrides)
  local errs = {}
  local loaded, policy = run_file(policy_path, nil, errs)
  if not loaded then return nil, errs end
  if type(policy) ~= "table" or gw.kind(policy) ~= "policy" then
    add(errs, "%s: a policy file must return gw.policy { ... }, got %s", policy_path, type(policy))
    return nil, errs
  end
  check_keys(policy, POLICY_KEYS, "policy", policy_path, errs)

  -- Wrongly typed keys are already reported; carry on to find more errors.
  local list = type(policy.plugins) == "table" and policy.plugins or {}
  local plugins = load_plugins(list, policy_path, errs)
  local policy_config = type(policy.config) == "table" and policy.config or {}
  local config = build_config(policy_config, policy_path, plugins, overrides, errs)
  gw.config = config

  for _, p in ipairs(plugins) do
    if p.mod.init then
      local chain = new_chain() -- gw.store works in init too
      push(chain, p.mod.init, format("plugin '%s' init", p.mod.name), p.mod.name)
      running_chain, running_i, running_event = chain, 1, nil
      local ok, err = pcall(p.mod.init, config[p.mod.name])
      running_chain = nil
      if not ok then add(errs, "%s: init failed: %s", p.path, tostring(err)) end
    end
  end

  local quality = traffic.thresholds(policy.quality, where(policy_path, "quality"), errs)

  -- Socket.IO namespaces: a list of "/name" strings; "/" is always there.
  local namespaces = {}
  if type(policy.namespaces) == "table" then
    for k, v in pairs(policy.namespaces) do
      if type(k) ~= "number" or type(v) ~= "string" or v:sub(1, 1) ~= "/" or v:find(",", 1, true) then
        add(errs, "%s: namespaces must be a list of names starting with '/' (without ','), found %s",
          where(policy_path, "namespaces"), tostring(v))
      else
        namespaces[#namespaces + 1] = v
      end
    end
  end

  local replay_rules = replay.rules(policy.replay, where(policy_path, "replay"), errs)

  if #errs > 0 then return nil, errs end
  local hooks = build_hooks(policy, plugins, config)
  hooks.quality = quality
  hooks.namespaces = namespaces
  hooks.replay = replay_rules
  return hooks
end

return runtime
