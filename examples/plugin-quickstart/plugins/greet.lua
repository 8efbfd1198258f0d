-- greet: says hello and remembers, per room, who was greeted.
--   greet {name, room?} -> ack {text = "Hello, <name>!", greeted = {names so far}}
--   greeted {room?}     -> ack {greeted = {names so far}} ([] when nobody yet)
-- The names live in gw.store, kept by the gateway: they survive policy reloads.
local gw = require "aivo"

local greeting, max_names -- from init: the file is loaded afresh on every reload

local function room_of(data)
  local room = type(data) == "table" and data.room
  return type(room) == "string" and room ~= "" and room or "lobby"
end

return gw.plugin {
  name = "greet",
  version = "1.0.0",
  -- config.greet.greeting, AIVO_GREET_GREETING, --set greet.greeting=Hi
  config = { greeting = "Hello", max_names = 50 },

  init = function(cfg)
    if cfg.max_names < 1 then error("greet.max_names must be at least 1", 0) end
    greeting, max_names = cfg.greeting, cfg.max_names
  end,

  events = {
    greet = function(conn, msg)
      local name = type(msg.data) == "table" and msg.data.name
      if type(name) ~= "string" or name == "" then
        return gw.REJECT, "bad_request", "data.name must be a non-empty string"
      end
      local room = gw.store:room(room_of(msg.data))
      local names = room:get("names") or {}
      if #names >= max_names then table.remove(names, 1) end
      names[#names + 1] = name
      local ok, err = room:set("names", names)
      if not ok then return gw.REJECT, err, "cannot remember " .. name end
      return gw.DONE, { text = greeting .. ", " .. name .. "!", greeted = names }
    end,

    greeted = function(conn, msg)
      -- gw.json.array: an empty list is sent as [] rather than {}
      local names = gw.store:room(room_of(msg.data)):get("names") or gw.json.array()
      return gw.DONE, { greeted = names }
    end,
  },
}
