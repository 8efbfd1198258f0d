local fake = require "helpers.fake_core"
local runtime = require "aivo.runtime"

describe("plugins/agent.lua", function()
  local hooks

  local function load(overrides)
    local dir = fake.tree({ ["policy.lua"] = 'return require("aivo").policy { plugins = { "agent" } }' })
    fake.reset({ policy_dir = dir })
    return runtime.load(dir .. "/policy.lua", overrides)
  end

  local function learning(conn, data)
    return { hooks.on_message(conn, { event = "agent:learning", data = data, id = 1, binary = false }) }
  end

  before_each(function() hooks = assert(load()) end)
  after_each(function() fake.cleanup() end)

  it("starts a session with a fresh 32-hex id", function()
    local conn = fake.conn()
    local res = learning(conn, { action = "start_session" })
    assert.is_true(res[1])
    assert.is_true(res[2].ok)
    assert.matches("^%x+$", res[2].sessionId)
    assert.equal(32, #res[2].sessionId)
    local again = learning(conn, { action = "start_session" })
    assert.are_not.equal(res[2].sessionId, again[2].sessionId)
  end)

  it("keeps websocket_sessions_active in step: start, end, and the connection going away", function()
    local active = function() return fake.metrics["websocket_sessions_active"].values[""] or 0 end
    local a, b = fake.conn(), fake.conn()
    local id = learning(a, { action = "start_session" })[2].sessionId
    learning(a, { action = "start_session" })
    learning(b, { action = "start_session" })
    assert.equal(3, active())
    learning(a, { action = "end_session", sessionId = id })
    assert.equal(2, active())
    learning(a, { action = "end_session", sessionId = id }) -- unknown now: no change
    assert.equal(2, active())
    hooks.on_disconnect(a, "closed")
    assert.equal(1, active())
  end)

  it("ends a session started on the same connection, once", function()
    local conn = fake.conn()
    local id = learning(conn, { action = "start_session" })[2].sessionId
    assert.same({ true, { ok = true, sessionId = id } }, learning(conn, { action = "end_session", sessionId = id }))
    assert.same({ false, "unknown_session", "no session '" .. id .. "' on this connection" },
      learning(conn, { action = "end_session", sessionId = id }))
  end)

  it("does not end another connection's session", function()
    local owner, other = fake.conn(), fake.conn()
    local id = learning(owner, { action = "start_session" })[2].sessionId
    assert.equal("unknown_session", learning(other, { action = "end_session", sessionId = id })[2])
    assert.is_true(learning(owner, { action = "end_session", sessionId = id })[1])
  end)

  it("refuses an unknown session id", function()
    assert.equal("unknown_session", learning(fake.conn(), { action = "end_session", sessionId = "nope" })[2])
  end)

  it("answers bad_request to anything else", function()
    local conn = fake.conn()
    for i, data in ipairs({ { action = "pause" }, {}, "start_session", { action = "end_session" },
                            { action = "end_session", sessionId = 5 } }) do
      assert.equal("bad_request", learning(conn, data)[2], "case " .. i)
    end
    assert.equal("bad_request", learning(conn, nil)[2])
  end)

  it("caps open sessions per connection at agent.max_sessions", function()
    hooks = assert(load({ { key = "agent.max_sessions", value = "2" } }))
    local conn = fake.conn()
    local first = learning(conn, { action = "start_session" })[2].sessionId
    learning(conn, { action = "start_session" })
    assert.same({ false, "too_many_sessions", "at most 2 open sessions per connection" },
      learning(conn, { action = "start_session" }))
    learning(conn, { action = "end_session", sessionId = first })
    assert.is_true(learning(conn, { action = "start_session" })[1])
    assert.is_true(learning(fake.conn(), { action = "start_session" })[1])
  end)

  it("fails to load with max_sessions below 1", function()
    local h, errs = load({ { key = "agent.max_sessions", value = "0" } })
    assert.is_nil(h)
    assert.same({ fake.root .. "/plugins/agent.lua: init failed: agent.max_sessions must be at least 1" }, errs)
  end)
end)
