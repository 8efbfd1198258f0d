-- The default policy: echo, rooms and agent sessions for every connection.
local gw = require "aivo"

return gw.policy {
  name = "default",

  -- Messages per minute per connection, as the old service (0: no limit; the
  -- benchmarks use it), and how many refused messages in a row close the
  -- connection with 4429 (0: never). AIVO_RATELIMIT_PER_MINUTE or
  -- --set ratelimit.per_minute=N. docs/ratelimit.md.
  config = { ratelimit = { per_minute = 100, close_after = 0 } },

  plugins = { "echo", "rooms", "agent" },

  -- A token is required (auth.required, on by default: the signature, alg,
  -- exp and nbf were checked in C before this runs). The identity is its
  -- subject. A client that also names a learner (Socket.IO auth payload
  -- {token, learnerId}, or ?learnerId= on /ws) must name the token's own:
  -- its learnerId claim, or its sub when it has none. docs/security.md.
  auth = function(claims, req)
    if claims == nil then
      return false, "token_missing", "a token is required"
    end
    local sub = claims.sub
    if type(sub) ~= "string" or sub == "" then
      return false, "invalid_claims", "the token has no subject (sub)"
    end
    local asked = type(req.auth) == "table" and req.auth.learnerId or nil
    if asked ~= nil then
      local own = claims.learnerId
      if own == nil then own = sub end
      if tostring(asked) ~= tostring(own) then
        return false, "learner_mismatch", "learnerId does not match the token"
      end
    end
    return true, { user = sub }
  end,

  -- Every message, before any handler: one bucket per connection.
  limit = function(conn, msg)
    local per_minute = gw.config.ratelimit.per_minute
    if per_minute > 0 then
      return { name = "per_connection", key = "conn:" .. conn.id, limit = per_minute, window = 60 }
    end
  end,

  -- A refused message: a client that keeps sending through its refusals is
  -- closed once ratelimit.close_after of them came in a row.
  limited = function(conn, msg, info)
    local close_after = gw.config.ratelimit.close_after
    if close_after > 0 and info.refused >= close_after then
      gw.log.info("closing conn %d: %d messages refused in a row", conn.id, info.refused)
      conn:close(4429, "rate limited")
    end
  end,
}
