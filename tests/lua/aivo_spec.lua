local fake = require "helpers.fake_core"
local gw = require "aivo"

describe("aivo", function()
  before_each(function() fake.reset() end)

  it("has two distinct verdicts", function()
    assert.is_table(gw.DONE)
    assert.are_not.equal(gw.DONE, gw.REJECT)
    assert.equal("gw.DONE", tostring(gw.DONE))
    assert.equal("gw.REJECT", tostring(gw.REJECT))
  end)

  it("marks policies and plugins, returning the same table", function()
    local t, u = {}, {}
    assert.equal(t, gw.policy(t))
    assert.equal(u, gw.plugin(u))
    assert.equal("policy", gw.kind(t))
    assert.equal("plugin", gw.kind(u))
    assert.is_nil(gw.kind({}))
    assert.has_error(function() gw.policy("x") end, "gw.policy expects a table, got string")
  end)

  it("publishes to a room, leaving out a conn or a conn id", function()
    local a, b, c = fake.conn(), fake.conn(), fake.conn()
    for _, conn in ipairs({ a, b, c }) do conn:join("r") end
    assert.equal(2, gw.publish("r", "e", 1, { except = a }))
    assert.equal(2, gw.publish("r", "e", 2, { except = b.id }))
    assert.equal(3, gw.publish("r", "e", 3))
    assert.same({ { event = "e", data = 2 }, { event = "e", data = 3 } }, fake.outbox(a))
    assert.same({ room = "r", event = "e", data = 1, except = a.id, count = 2 }, fake.publishes[1])
    assert.equal(3, gw.room_size("r"))
  end)

  it("sends to every connection of a user", function()
    local t1, t2, other = fake.conn({ user = "ann" }), fake.conn({ user = "ann" }), fake.conn({ user = "bo" })
    assert.equal(2, gw.send_user("ann", "note", { n = 1 }))
    assert.same({ { event = "note", data = { n = 1 } } }, fake.outbox(t1))
    assert.same(fake.outbox(t1), fake.outbox(t2))
    assert.same({}, fake.outbox(other))
  end)

  it("logs with string.format, or verbatim without arguments", function()
    gw.log.info("%d%% of %s", 50, "x")
    gw.log.warn("100% sure")
    gw.log.error("e")
    gw.log.debug("d")
    assert.same({
      { level = "info", message = "50% of x" }, { level = "warn", message = "100% sure" },
      { level = "error", message = "e" }, { level = "debug", message = "d" },
    }, fake.logs)
  end)

  it("exposes cjson, the clock and ids", function()
    assert.equal(require "cjson", gw.json)
    fake.time = 1234.5
    assert.equal(1234.5, gw.now())
    assert.are_not.equal(gw.new_id(), gw.new_id())
  end)
end)
