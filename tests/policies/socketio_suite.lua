-- The server the official Socket.IO protocol test suite expects (the public repository
-- socketio/socket.io-protocol, folder test-suite; scripts/socketio-suite.sh runs it):
-- pingInterval 300, pingTimeout 200, maxPayload 1000000, connectTimeout 1000, any origin;
-- on connect, "auth" is sent back with the CONNECT auth payload (in "/" and "/custom");
-- "message" is answered with "message-back" and the same arguments, "message-with-ack" is
-- acked with its arguments.
local gw = require "aivo"

return gw.policy {
  name = "socketio_suite",
  namespaces = { "/custom" },
  config = {
    auth = { required = false },
    origins = { allowed = "*" },
    socketio = { ping_interval = 300, ping_timeout = 200, connect_timeout = 1000,
                 max_payload = 1000000,
                 token_field = "" }, -- the suite's {"token": "123"} is not a JWT
    -- no link measurement: its connection:quality event (sent after the first pong, 300 ms
    -- in) is no packet the reference server sends, and the suite reads packets in order
    quality = { check_interval = 0 },
  },

  connect = function(conn, req)
    conn:emit("auth", req.auth)
    return true
  end,

  message = function(conn, msg)
    if msg.namespace ~= "/" then return end
    if msg.event == "message" then
      conn:emit("message-back", msg.args) -- an argument list: sent as separate arguments
      return gw.DONE
    elseif msg.event == "message-with-ack" then
      return gw.DONE, msg.args
    end
  end,
}
