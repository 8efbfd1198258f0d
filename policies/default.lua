-- The default policy: echo, rooms and agent sessions for every connection.
local gw = require "aivo"

return gw.policy {
  name = "default",

  -- Read by the rate-limit feature; override with AIVO_RATELIMIT_PER_MINUTE
  -- or --set ratelimit.per_minute=N.
  config = { ratelimit = { per_minute = 100 } },

  plugins = { "echo", "rooms", "agent" },

  -- The identity is the verified JWT's subject when the client sent one;
  -- without it the gateway names the connection "anon-<id>". Requiring a
  -- token (JWT auth) and enforcing the per-minute limit come with their own
  -- features; this policy only chooses the identity.
  connect = function(conn, req)
    local claims = req.claims
    return true, { user = claims and claims.sub }
  end,
}
