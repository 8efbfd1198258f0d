-- Test policy for tests/integration/lifecycle.test.js: valid Lua, but a
-- misspelt hook key on line 8, which --check must report with file and line.
local gw = require "aivo"
return gw.policy {
  name = "broken_shape",
  plugins = { "echo" },
  -- "mesage" is not a policy key: the hook would silently never run.
  mesage = function(conn, msg) end,
}
