local fake = require "helpers.fake_core"
local runtime = require "aivo.runtime"
local cjson = require "cjson"

describe("plugins/echo.lua", function()
  local hooks, conn

  before_each(function()
    local dir = fake.tree({ ["policy.lua"] = 'return require("aivo").policy { plugins = { "echo" } }' })
    fake.reset({ policy_dir = dir })
    hooks = assert(runtime.load(dir .. "/policy.lua"))
    conn = fake.conn()
  end)
  after_each(function() fake.cleanup() end)

  it("answers in the ack when the client asked for one", function()
    local data = { text = "hi", n = { 1, 2 } }
    local ok, ack = hooks.on_message(conn, { event = "echo", data = data, id = 7, binary = false })
    assert.is_true(ok)
    assert.equal(data, ack)
    assert.same({}, fake.emits)
  end)

  it("emits 'echo' back when no ack was asked for", function()
    local ok, ack = hooks.on_message(conn, { event = "echo", data = "hello", binary = false })
    assert.is_true(ok)
    assert.is_nil(ack)
    assert.same({ { id = conn.id, event = "echo", data = "hello" } }, fake.emits)
  end)

  it("echoes JSON null as null", function()
    hooks.on_message(conn, { event = "echo", data = cjson.null, binary = false })
    assert.equal(cjson.null, fake.emits[1].data)
  end)

  it("sends a binary frame back as a binary frame", function()
    local ok = hooks.on_message(conn, { event = "binary", data = "\0\1\255", binary = true })
    assert.is_true(ok)
    assert.same({ { id = conn.id, data = "\0\1\255" } }, fake.binaries)
    assert.same({}, fake.emits)
  end)

  it("does not treat a text event called 'binary' as a frame", function()
    assert.same({ false, "unknown_event", "no handler for event 'binary'" },
      { hooks.on_message(conn, { event = "binary", data = "x", binary = false }) })
    assert.same({}, fake.binaries)
  end)
end)
