-- Test policy for tests/integration/socketio*.test.js: a declared namespace (/admin) beside
-- "/", the echo and rooms plugins, no token required, and a few handlers that show what the
-- policy sees of a Socket.IO client.
local gw = require "aivo"

return gw.policy {
  name = "socketio-test",
  namespaces = { "/admin" },
  config = { auth = { required = false } },
  plugins = { "echo", "rooms" },

  connect = function(conn, req)
    local auth = type(req.auth) == "table" and req.auth or {}
    if auth.refuse then
      return false, "banned", "go away"
    end
    -- queued before the CONNECT reply is sent, delivered right after it
    conn:emit("welcome", {
      id = conn.id, namespace = req.namespace, protocol = req.protocol, auth = req.auth,
      sub = req.claims and req.claims.sub,
    })
    return true, auth.user and { user = auth.user } or nil
  end,

  message = function(conn, msg)
    if msg.event == "kick" then
      conn:close(4000, "kicked")
      return gw.DONE
    elseif msg.event == "whoami" then
      return gw.DONE, { id = conn.id, user = conn.user, namespace = msg.namespace,
                        protocol = msg.protocol, nargs = #msg.args }
    elseif msg.event == "two-args" then -- an ack with two arguments
      return gw.DONE, gw.args(#msg.args, msg.args[1])
    elseif msg.event == "publish" then -- to a room, encoded once per protocol and namespace
      gw.publish(msg.data.room, "announce", msg.data.body)
      return gw.DONE
    elseif msg.event == "send-binary" then
      conn:send_binary(msg.data)
      return gw.DONE
    end
  end,
}
