-- echo: sends every "echo" message back to its sender, and binary frames too.
local gw = require "aivo"

return gw.plugin {
  name = "echo",
  version = "1.0.0",
  priority = 10,

  events = {
    echo = function(conn, msg)
      -- With an ack id the payload goes back in the ack, else as an event.
      if msg.id ~= nil then
        return gw.DONE, msg.data
      end
      conn:emit("echo", msg.data)
      return gw.DONE
    end,

    binary = function(conn, msg)
      -- A text message may also be called "binary"; only real frames are ours.
      if not msg.binary then return end
      conn:send_binary(msg.data)
      return gw.DONE
    end,
  },
}
