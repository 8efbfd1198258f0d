-- bench/replay.js: the rooms plugin, big:* streams of 1000 messages, and `fill`, which
-- publishes many kept messages from inside the gateway (no HTTP or WebSocket per message).
local gw = require "aivo"

return gw.policy {
  name = "replay-bench",
  plugins = { "rooms" },
  replay = { { channel = "big:*", size = 1000, ttl = 3600 } },
  message = function(conn, msg)
    if msg.event ~= "fill" then return nil end
    local d = msg.data
    local payload = string.rep("x", d.bytes)
    for s = d.from, d.to do
      local room = d.prefix .. s
      for i = 1, d.per do gw.publish(room, "note", { i = i, p = payload }) end
    end
    return gw.DONE, { ok = true }
  end,
}
