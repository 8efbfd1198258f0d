-- Test policy for tests/integration/faults.test.js: the misbehaving "faulty"
-- handlers (tests/policies/plugins/faulty_handlers.lua) next to the shipped echo
-- plugin. The plugin is not called "faulty": plugin lookup tries
-- <policy dir>/<name>.lua first, which would find this file itself.
local gw = require "aivo"

return gw.policy {
  name = "faulty",
  plugins = { "faulty_handlers", "echo" },
}
