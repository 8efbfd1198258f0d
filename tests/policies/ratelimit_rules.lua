-- Test policy for tests/integration/ratelimit.test.js: two rules on every
-- message (per connection and per user), a per-event rule, a malformed rule,
-- and a `limited` hook that tells the client which rule refused it. The
-- identity is ?user=NAME.
local gw = require "aivo"

local function query_user(q)
  if type(q) == "table" then return q.user end
  return type(q) == "string" and q:match("user=([%w_-]+)") or nil
end

return gw.policy {
  name = "ratelimit-rules",
  plugins = { "echo" },

  connect = function(conn, req)
    return true, { user = query_user(req.query) }
  end,

  limit = function(conn, msg)
    if msg.event == "bad" then
      return { key = "bad", limit = 1, window = 1, colour = "red" } -- unknown field: an error
    elseif msg.event == "typing" then -- per user and event: 2 per second
      return { name = "typing", key = "typing:" .. conn.user, limit = 2, window = 1 }
    end
    return {
      { name = "per_connection", key = "conn:" .. conn.id, limit = 5, window = 60 },
      { name = "per_user", key = "user:" .. conn.user, limit = 8, window = 60 },
    }
  end,

  limited = function(conn, msg, info)
    conn:emit("limited", { event = msg.event, rule = info.rule, refused = info.refused,
                           retryAfterMs = info.retry_after_ms })
  end,

  message = function(conn, msg)
    if msg.event == "typing" or msg.event == "bad" then return gw.DONE, "ok" end
  end,
}
