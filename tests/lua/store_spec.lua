-- gw.store (docs/policy-api.md, "The plugin store") under the test double of the
-- core, and the runtime's part: binding the store to the running plugin, naming
-- the handler that failed, and never loading a policy as its own plugin.
local fake = require "helpers.fake_core"
local runtime = require "aivo.runtime"

local counter = [[
local gw = require "aivo"
return gw.plugin {
  name = "%s",
  events = {
    ["%s:count"] = function(conn, msg)
      local room = msg.data.room
      local history = gw.store:room(room):get("history") or {}
      history[#history + 1] = msg.data.text
      local ok, err = gw.store:room(room):set("history", history)
      if not ok then return gw.REJECT, err, "store refused" end
      return gw.DONE, { n = gw.store:incr("count"), history = history }
    end,
    ["%s:peek"] = function(conn, msg) return gw.DONE, gw.store:get(msg.data.key) end,
  },
}
]]

describe("gw.store", function()
  local dir, hooks

  local function load(store)
    fake.reset({ policy_dir = dir, store = store })
    hooks = assert(runtime.load(dir .. "/policy.lua"))
  end

  local function send(event, data)
    return { hooks.on_message(fake.conn(), { event = event, data = data, id = 1 }) }
  end

  before_each(function()
    dir = fake.tree({
      ["policy.lua"] = [[return require("aivo").policy { plugins = { "a", "b" },
        message = function(conn, msg)
          if msg.event == "policy:store" then return require("aivo").store:get("x") end
        end }]],
      ["plugins/a.lua"] = counter:format("a", "a", "a"),
      ["plugins/b.lua"] = counter:format("b", "b", "b"),
    })
    load()
  end)
  after_each(function() fake.cleanup() end)

  it("keeps per-room values and counters that survive a reload", function()
    assert.same({ true, { n = 1, history = { "hi" } } }, send("a:count", { room = "r1", text = "hi" }))
    hooks = assert(runtime.load(dir .. "/policy.lua")) -- a reload: the store stays
    assert.same({ true, { n = 2, history = { "hi", "again" } } }, send("a:count", { room = "r1", text = "again" }))
    assert.same({ true, { n = 3, history = { "other" } } }, send("a:count", { room = "r2", text = "other" }))
  end)

  it("binds every call to the plugin whose handler runs: plugins do not share keys", function()
    send("a:count", { room = "r1", text = "from a" })
    assert.same({ true, { n = 1, history = { "from b" } } }, send("b:count", { room = "r1", text = "from b" }))
    assert.same({ true, 1 }, send("a:peek", { key = "count" }))
    assert.same({
      ["a/plugin//count"] = 1, ["a/room/r1/history"] = { "from a" },
      ["b/plugin//count"] = 1, ["b/room/r1/history"] = { "from b" },
    }, fake.store_entries())
  end)

  it("refuses the policy's own hooks: the store belongs to plugins", function()
    assert.has_error(function() send("policy:store", {}) end,
      "gw.store can only be used by a plugin (in its handlers or init)")
  end)

  it("returns nil, err over a bound and keeps what it had", function()
    load({ max_value_bytes = 20 })
    assert.same({ true, { n = 1, history = { "short" } } }, send("a:count", { room = "r", text = "short" }))
    assert.same({ false, "too_large", "store refused" },
      send("a:count", { room = "r", text = "far too long to fit in twenty bytes" }))
    assert.same({ "short" }, fake.store_entries()["a/room/r/history"])
  end)
end)

describe("aivo.runtime", function()
  after_each(function() fake.cleanup() end)

  it("never loads a policy file as its own plugin", function()
    local dir = fake.tree({
      ["chat.lua"] = 'return require("aivo").policy { plugins = { "chat" } }',
    })
    fake.reset({ policy_dir = dir, plugin_path = { dir .. "/none" } })
    local hooks, errs = runtime.load(dir .. "/chat.lua")
    assert.is_nil(hooks)
    assert.matches("plugin 'chat' not found", errs[1], 1, true)
  end)

  it("finds a plugin in any folder of a plugin path list", function()
    local dir = fake.tree({
      ["p/policy.lua"] = 'return require("aivo").policy { plugins = { "one", "two" } }',
      ["x/one.lua"] = 'return require("aivo").plugin { name = "one" }',
      ["y/two/init.lua"] = 'return require("aivo").plugin { name = "two" }',
    })
    fake.reset({ policy_dir = dir .. "/p", plugin_path = { dir .. "/x", dir .. "/y" } })
    assert.is_table((runtime.load(dir .. "/p/policy.lua")))
  end)

  it("names the plugin handler and the event that raised (hooks.blame)", function()
    local dir = fake.tree({
      ["policy.lua"] = 'return require("aivo").policy { plugins = { "bad" } }',
      ["plugins/bad.lua"] = [[return require("aivo").plugin { name = "bad",
        events = { boom = function() error("boom") end },
        on_message = function(conn, msg) if msg.event == "other" then error("other") end end }]],
    })
    fake.reset({ policy_dir = dir })
    local hooks = assert(runtime.load(dir .. "/policy.lua"))
    assert.has_error(function() hooks.on_message(fake.conn(), { event = "boom" }) end)
    assert.same({ "plugin 'bad' events['boom']", "bad" }, { hooks.blame() })
    assert.has_error(function() hooks.on_message(fake.conn(), { event = "other" }) end)
    assert.same({ "plugin 'bad' on_message (event 'other')", "bad" }, { hooks.blame() })
    hooks.on_message(fake.conn(), { event = "nobody" }) -- no error: nobody to blame
    assert.is_nil(hooks.blame())
  end)
end)
