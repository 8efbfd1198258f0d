-- agent: learning sessions an agent starts and ends over one connection.
--   agent:learning {action = "start_session"}           -> ack {ok = true, sessionId}
--   agent:learning {action = "end_session", sessionId} -> ack {ok = true, sessionId}
-- A session is a connection attribute "agent.session.<id>", so it lives in
-- the core and ends with the connection, even across policy reloads.
local gw = require "aivo"

local COUNT = "agent.sessions"

local function key(id)
  return "agent.session." .. id
end

local max_sessions
local active -- the old service's websocket_sessions_active gauge

local function open_count(conn)
  return tonumber(conn:get(COUNT)) or 0
end

local actions = {
  start_session = function(conn)
    local open = open_count(conn)
    -- Attributes are core memory; a client must not grow them without bound.
    if open >= max_sessions then
      return gw.REJECT, "too_many_sessions", "at most " .. max_sessions .. " open sessions per connection"
    end
    local id = gw.new_id()
    conn:set(key(id), "1")
    conn:set(COUNT, tostring(open + 1))
    active:inc()
    return gw.DONE, { ok = true, sessionId = id }
  end,

  end_session = function(conn, data)
    local id = data.sessionId
    if type(id) ~= "string" then
      return gw.REJECT, "bad_request", "end_session needs a string sessionId"
    end
    if conn:get(key(id)) == nil then
      return gw.REJECT, "unknown_session", "no session '" .. id .. "' on this connection"
    end
    conn:set(key(id), nil)
    conn:set(COUNT, tostring(open_count(conn) - 1))
    active:dec()
    return gw.DONE, { ok = true, sessionId = id }
  end,
}

return gw.plugin {
  name = "agent",
  version = "1.0.0",
  priority = 100,
  config = { max_sessions = 100 },

  init = function(cfg)
    if cfg.max_sessions < 1 then error("agent.max_sessions must be at least 1", 0) end
    max_sessions = cfg.max_sessions
    active = gw.metrics.gauge { name = "websocket_sessions_active", help = "Active agent sessions." }
  end,

  -- sessions end with their connection
  on_disconnect = function(conn)
    local open = open_count(conn)
    if open > 0 then active:dec(open) end
  end,

  events = {
    ["agent:learning"] = function(conn, msg)
      local data = msg.data
      local action = type(data) == "table" and actions[data.action]
      if not action then
        return gw.REJECT, "bad_request", "action must be 'start_session' or 'end_session'"
      end
      return action(conn, data)
    end,
  },
}
