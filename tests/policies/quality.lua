-- Test policy for tests/integration/quality.test.js: echo, the identity from
-- ?user=NAME, and a quality_change hook that tells the client what the policy
-- saw (so the test can check the hook runs on every class change).
local gw = require "aivo"

local function query_user(q)
  if type(q) == "table" then return q.user end
  return type(q) == "string" and q:match("user=([%w_-]+)") or nil
end

return gw.policy {
  name = "quality",
  plugins = { "echo" },

  connect = function(conn, req)
    return true, { user = query_user(req.query) }
  end,

  quality_change = function(conn, q)
    conn:emit("quality:changed", { from = q.previous, to = q.quality, stability = q.stability,
                                   class_now = conn.quality })
  end,
}
