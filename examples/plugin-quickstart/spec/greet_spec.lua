-- Run from this folder with: aivo-gw test
local fake = require "helpers.fake_core" -- the gateway's C side, faked: first
local runtime = require "aivo.runtime"

describe("greet", function()
  local hooks, dir

  local function load(policy_source)
    dir = fake.tree({ ["policy.lua"] = policy_source or
      'return require("aivo").policy { plugins = { "greet" } }' })
    -- plugins are found in ./plugins and every --plugin-path given to aivo-gw test
    hooks = assert(runtime.load(dir .. "/policy.lua"))
  end

  local function send(conn, event, data)
    return { hooks.on_message(conn, { event = event, data = data, id = 1 }) }
  end

  before_each(function()
    fake.reset()
    load()
  end)
  after_each(function() fake.cleanup() end)

  it("greets and remembers who was greeted, per room", function()
    local conn = fake.conn({ user = "ann" })
    assert.same({ true, { text = "Hello, Ann!", greeted = { "Ann" } } }, send(conn, "greet", { name = "Ann" }))
    assert.same({ true, { text = "Hello, Bob!", greeted = { "Ann", "Bob" } } }, send(conn, "greet", { name = "Bob" }))
    assert.same({ true, { text = "Hello, Cy!", greeted = { "Cy" } } },
      send(conn, "greet", { name = "Cy", room = "kitchen" }))
  end)

  it("keeps the names across a reload, with the new config", function()
    send(fake.conn(), "greet", { name = "Ann" })
    load('return require("aivo").policy { plugins = { "greet" }, config = { greet = { greeting = "Hi" } } }')
    assert.same({ true, { text = "Hi, Bob!", greeted = { "Ann", "Bob" } } }, send(fake.conn(), "greet", { name = "Bob" }))
  end)

  it("answers an empty list when nobody was greeted", function()
    local ok, data = unpack(send(fake.conn(), "greeted", { room = "empty" }))
    assert.is_true(ok)
    assert.same({}, data.greeted)
  end)

  it("refuses a greeting without a name", function()
    assert.same({ false, "bad_request", "data.name must be a non-empty string" }, send(fake.conn(), "greet", {}))
  end)

  it("refuses a bad max_names at load, as the gateway would", function()
    dir = fake.tree({ ["policy.lua"] =
      'return require("aivo").policy { plugins = { "greet" }, config = { greet = { max_names = 0 } } }' })
    local loaded, errs = runtime.load(dir .. "/policy.lua")
    assert.is_nil(loaded)
    assert.matches("init failed: greet.max_names must be at least 1", errs[1], 1, true)
  end)
end)
