-- Test policy for tests/integration/cluster.test.js: the rooms and echo plugins, and a
-- per-user limit of 100 messages a minute marked global (docs/ratelimit.md), so a user's
-- connections on several gateways share one budget through Redis.
local gw = require "aivo"

return gw.policy {
  name = "cluster-test",
  plugins = { "rooms", "echo" },

  limit = function(conn, msg)
    if msg.event ~= "count" then return nil end
    return { name = "per_user", key = "user:" .. conn.user, limit = 100, window = 60, scope = "global" }
  end,

  message = function(conn, msg)
    if msg.event == "count" then return gw.DONE, { ok = true } end
  end,
}
