local fake = require "helpers.fake_core"
local runtime = require "aivo.runtime"

describe("policies/default.lua", function()
  local path = fake.root .. "/policies/default.lua"

  before_each(function() fake.reset() end)

  it("loads with echo, rooms and agent", function()
    local hooks, errs = runtime.load(path)
    assert.is_nil(errs)
    local names = {}
    for i, p in ipairs(hooks.plugins) do names[i] = p.name end
    table.sort(names)
    assert.same({ "agent", "echo", "rooms" }, names)
  end)

  it("sets ratelimit.per_minute = 100, overridable by env and --set", function()
    assert.equal(100, runtime.load(path).config.ratelimit.per_minute)
    fake.reset({ env = { AIVO_RATELIMIT_PER_MINUTE = "60" } })
    assert.equal(60, runtime.load(path).config.ratelimit.per_minute)
    local hooks = runtime.load(path, { { key = "ratelimit.per_minute", value = "30" } })
    assert.equal(30, hooks.config.ratelimit.per_minute)
  end)

  it("names a connection after the verified JWT subject, else anon-<id>", function()
    local hooks = runtime.load(path)
    assert.same({ true, "user-42" }, { hooks.on_connect(fake.conn({ id = 1 }), { claims = { sub = "user-42" } }) })
    assert.same({ true, "anon-2" }, { hooks.on_connect(fake.conn({ id = 2 }), { headers = {} }) })
  end)

  it("handles the events of its plugins and refuses others", function()
    local hooks = runtime.load(path)
    local conn = fake.conn({ user = "alice" })
    assert.same({ true, "x" }, { hooks.on_message(conn, { event = "echo", data = "x", id = 1 }) })
    assert.same({ true, { ok = true, room = "r" } },
      { hooks.on_message(conn, { event = "join", data = { room = "r" }, id = 2 }) })
    assert.is_true((hooks.on_message(conn, { event = "agent:learning", data = { action = "start_session" } })))
    assert.same({ false, "unknown_event", "no handler for event 'nope'" },
      { hooks.on_message(conn, { event = "nope" }) })
  end)
end)
