-- Test plugin for tests/integration/faults.test.js: each event misbehaves in
-- one way a live-edited policy can, so the tests can check that the gateway
-- contains it (internal_error to that client, everybody else unaffected).
local gw = require "aivo"

return gw.plugin {
  name = "faulty_handlers",
  version = "1.0.0",
  priority = 200,
  events = {
    -- Raises; the log must point at this line.
    boom = function(conn, msg)
      error("faulty plugin: boom requested")
    end,

    -- Never returns; only the instruction budget can stop it.
    spin = function(conn, msg)
      while true do end
    end,

    -- Allocates without bound; only the memory cap (or the budget) stops it.
    hog = function(conn, msg)
      local t, i = {}, 0
      while true do
        i = i + 1
        t[i] = string.rep("x", 16384) .. i
      end
    end,
  },
}
