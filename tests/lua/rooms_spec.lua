local fake = require "helpers.fake_core"
local runtime = require "aivo.runtime"
local cjson = require "cjson"

describe("plugins/rooms.lua", function()
  local hooks

  local function load(max_rooms)
    local dir = fake.tree({ ["policy.lua"] = 'return require("aivo").policy { plugins = { "rooms" } }' })
    fake.reset({ policy_dir = dir, max_rooms = max_rooms })
    hooks = assert(runtime.load(dir .. "/policy.lua"))
  end

  local function send(conn, event, data)
    return { hooks.on_message(conn, { event = event, data = data, id = 1, binary = false }) }
  end

  before_each(function() load() end)
  after_each(function() fake.cleanup() end)

  it("joins and leaves a room", function()
    local conn = fake.conn()
    assert.same({ true, { ok = true, room = "lobby" } }, send(conn, "join", { room = "lobby" }))
    assert.is_true(fake.in_room(conn.id, "lobby"))
    assert.same({ true, { ok = true, room = "lobby" } }, send(conn, "join", { room = "lobby" }))
    assert.equal(1, fake.room_size("lobby"))
    assert.same({ true, { ok = true, room = "lobby" } }, send(conn, "leave", { room = "lobby" }))
    assert.is_false(fake.in_room(conn.id, "lobby"))
    assert.same({ true, { ok = true, room = "lobby" } }, send(conn, "leave", { room = "lobby" }))
  end)

  it("sends to every other member of the room, and only to them", function()
    local alice, bob, carol = fake.conn({ user = "alice" }), fake.conn({ user = "bob" }), fake.conn({ user = "carol" })
    send(alice, "join", { room = "lobby" })
    send(bob, "join", { room = "lobby" })
    assert.same({ true, { ok = true } }, send(alice, "room:send", { room = "lobby", msg = { text = "hi" } }))
    assert.same({ { event = "room:message", data = { room = "lobby", from = "alice", msg = { text = "hi" } } } },
      fake.outbox(bob))
    assert.same({}, fake.outbox(alice))
    assert.same({}, fake.outbox(carol))
  end)

  it("refuses room:send to a room the sender has not joined", function()
    local alice, bob = fake.conn({ user = "alice" }), fake.conn({ user = "bob" })
    send(bob, "join", { room = "lobby" })
    assert.same({ false, "not_in_room", "join 'lobby' before sending to it" },
      send(alice, "room:send", { room = "lobby", msg = "hi" }))
    assert.same({}, fake.outbox(bob))
  end)

  it("counts the sender's own user room as joined", function()
    local tab1, tab2 = fake.conn({ user = "alice" }), fake.conn({ user = "alice" })
    local bob = fake.conn({ user = "bob" })
    assert.same({ true, { ok = true } }, send(tab1, "room:send", { room = "user:alice", msg = "sync" }))
    assert.same({ { event = "room:message", data = { room = "user:alice", from = "alice", msg = "sync" } } },
      fake.outbox(tab2))
    assert.same({ false, "not_in_room", "join 'user:alice' before sending to it" },
      send(bob, "room:send", { room = "user:alice", msg = "psst" }))
  end)

  it("keeps connections out of other users' rooms", function()
    local bob = fake.conn({ user = "bob" })
    assert.same({ false, "forbidden", "user rooms are managed by the gateway" },
      send(bob, "join", { room = "user:alice" }))
    assert.same({ false, "forbidden", "user rooms are managed by the gateway" },
      send(bob, "leave", { room = "user:bob" }))
    assert.same({ "user:bob" }, bob:rooms())
  end)

  it("answers bad_request to a bad room name", function()
    local conn = fake.conn()
    local bad = { { room = "" }, { room = ("x"):rep(201) }, { room = 42 }, { room = {} },
                  { name = "lobby" }, "lobby", cjson.null }
    for _, event in ipairs({ "join", "leave", "room:send" }) do
      for i, data in ipairs(bad) do
        local res = send(conn, event, data)
        assert.same({ false, "bad_request" }, { res[1], res[2] }, event .. " #" .. i)
      end
      assert.equal("bad_request", send(conn, event, nil)[2])
    end
    assert.same({}, fake.joins)
    local long = ("x"):rep(200)
    assert.same({ true, { ok = true, room = long } }, send(conn, "join", { room = long }))
  end)

  it("passes on the core's too_many_rooms", function()
    load(2)
    local conn = fake.conn()
    send(conn, "join", { room = "a" })
    send(conn, "join", { room = "b" })
    assert.same({ false, "too_many_rooms", "cannot join 'c': too_many_rooms" },
      send(conn, "join", { room = "c" }))
    assert.is_false(fake.in_room(conn.id, "c"))
  end)

  it("passes on 'closed' once the connection is gone", function()
    local conn = fake.conn()
    conn:close(1000, "bye")
    assert.same({ false, "closed", "cannot join 'a': closed" }, send(conn, "join", { room = "a" }))
  end)
end)
