-- Test policy for tests/integration/lifecycle.test.js: a syntax error on line 7
-- (one `end` too many), which --check must report as broken_syntax.lua:7.
local gw = require "aivo"
return gw.policy {
  name = "broken_syntax",
  plugins = { "echo" },
  message = function(conn, msg) return end end,
}
