-- rooms: join, leave and talk in named rooms.
--   join      {room}      -> ack {ok = true, room}
--   leave     {room}      -> ack {ok = true, room}
--   room:send {room, msg} -> ack {ok = true}; the other members get
--                            room:message {room, from = <sender identity>, msg}
local gw = require "aivo"

local MAX_NAME = 200
local BAD_NAME = "data.room must be a non-empty string of at most 200 bytes"

local function room_of(msg)
  local data = msg.data
  local room = type(data) == "table" and data.room
  if type(room) == "string" and room ~= "" and #room <= MAX_NAME then
    return room
  end
end

-- user:<identity> rooms carry private messages (gw.send_user) and only the
-- gateway puts a connection in one, so nobody can listen in on another user.
local function is_user_room(room)
  return room:sub(1, 5) == "user:"
end

return gw.plugin {
  name = "rooms",
  version = "1.0.0",
  priority = 100,

  events = {
    join = function(conn, msg)
      local room = room_of(msg)
      if not room then return gw.REJECT, "bad_request", BAD_NAME end
      if is_user_room(room) then
        return gw.REJECT, "forbidden", "user rooms are managed by the gateway"
      end
      local ok, err = conn:join(room)
      if not ok then
        if err == "bad_room" then err = "bad_request" end
        return gw.REJECT, err, "cannot join '" .. room .. "': " .. err
      end
      return gw.DONE, { ok = true, room = room }
    end,

    leave = function(conn, msg)
      local room = room_of(msg)
      if not room then return gw.REJECT, "bad_request", BAD_NAME end
      if is_user_room(room) then
        return gw.REJECT, "forbidden", "user rooms are managed by the gateway"
      end
      -- Leaving a room one is not in is fine: the outcome is the same.
      local ok, err = conn:leave(room)
      if ok == nil then
        return gw.REJECT, err, "cannot leave '" .. room .. "': " .. err
      end
      return gw.DONE, { ok = true, room = room }
    end,

    ["room:send"] = function(conn, msg)
      local room = room_of(msg)
      if not room then return gw.REJECT, "bad_request", BAD_NAME end
      -- Membership includes the sender's own user room.
      if not conn:in_room(room) then
        return gw.REJECT, "not_in_room", "join '" .. room .. "' before sending to it"
      end
      gw.publish(room, "room:message", { room = room, from = conn.user, msg = msg.data.msg },
        { except = conn })
      return gw.DONE, { ok = true }
    end,
  },
}
