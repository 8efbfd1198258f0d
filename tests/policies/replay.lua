-- Test policy for tests/integration/replay.test.js (docs/offline-replay.md): rooms and
-- echo, rooms kept too (room:*), a tiny stream (small:*, 5 messages), a short TTL (short:*,
-- 1 s), and `invoice` to a user needing an ack (re-sent after 0.3 s, 0.6 s, 1.2 s).
local gw = require "aivo"

return gw.policy {
  name = "replay-test",
  plugins = { "rooms", "echo" },
  replay = {
    { channel = "user:*", events = { "invoice" }, ack = true, ack_timeout = 0.3, retries = 3 },
    { channel = "room:*", ttl = 600, size = 1000 },
    { channel = "small:*", size = 5 },
    { channel = "short:*", ttl = 1 },
  },
}
