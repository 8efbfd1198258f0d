-- Test policy for the client kit's tests (tests/clients/): the default
-- policy's plugins and token auth, a rate limit set from config (so a test can
-- make it tiny with --set client.limit=N --set client.window=S), and `flaky`,
-- a handler that is slow to ack the first few tries of a message. Rooms named
-- kept-* are kept for offline replay; `bill {to}` sends an invoice needing an
-- ack to that user's channel (docs/offline-replay.md).
local gw = require "aivo"

-- key -> tries seen. Module state: reset by a reload, enough for one test.
local tries = {}

return gw.policy {
  name = "client-kit",
  config = { client = { limit = 0, window = 1 } },
  plugins = { "echo", "rooms" },
  replay = {
    { channel = "user:*", events = { "invoice" }, ack = true, ack_timeout = 0.3 },
    { channel = "kept-*", ttl = 600, size = 100 },
  },

  auth = function(claims)
    if claims == nil then return false, "token_missing", "a token is required" end
    if type(claims.sub) ~= "string" or claims.sub == "" then
      return false, "invalid_claims", "the token has no subject (sub)"
    end
    return true, { user = claims.sub }
  end,

  limit = function(conn, msg)
    local c = gw.config.client
    -- connection:quality probes and joins pass, so only the app's traffic is limited
    if c.limit > 0 and (msg.event == "echo" or msg.event == "room:send") then
      return { key = "conn:" .. conn.id, limit = c.limit, window = c.window }
    end
  end,

  -- flaky {key, slow = N, delayMs = D}: the first N tries of `key` are acked
  -- only after D ms (the gateway is busy: run with lua.instruction_budget=0),
  -- later ones at once. The ack says which try it was.
  message = function(conn, msg)
    if msg.event == "bill" then
      gw.publish("user:" .. tostring(msg.data.to), "invoice", { n = msg.data.n })
      return gw.DONE, { ok = true }
    end
    if msg.event ~= "flaky" then return end
    local d = msg.data
    if type(d) ~= "table" or type(d.key) ~= "string" then
      return gw.REJECT, "bad_request", "data.key must be a string"
    end
    local n = (tries[d.key] or 0) + 1
    tries[d.key] = n
    if n <= (tonumber(d.slow) or 0) then
      local deadline = gw.now() + (tonumber(d.delayMs) or 1000)
      while gw.now() < deadline do end
    end
    return gw.DONE, { key = d.key, try = n }
  end,
}
