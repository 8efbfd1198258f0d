-- The smallest policy that still serves the benchmark (bench/run.sh): the same token check
-- as policies/default.lua, the echo and rooms plugins, no per-message limit hook and no
-- agent plugin. Its echo row against the default policy's shows what those cost.
local gw = require "aivo"

return gw.policy {
  name = "bench-minimal",
  -- Declared only so that the benchmark's --set ratelimit.per_minute=0 is a known key:
  -- this policy has no limit hook.
  config = { ratelimit = { per_minute = 0 } },
  plugins = { "echo", "rooms" },
  auth = function(claims, req)
    if claims == nil or type(claims.sub) ~= "string" or claims.sub == "" then
      return false, "token_missing", "a token with a subject is required"
    end
    return true, { user = claims.sub }
  end,
}
