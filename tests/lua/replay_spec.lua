-- aivo.replay: the policy's replay table checked and completed (docs/offline-replay.md).
local replay = require "aivo.replay"

local function rules(t)
  local errs = {}
  local out = replay.rules(t, "policy.lua:3", errs)
  return out, errs
end

describe("aivo.replay.rules", function()
  it("keeps user channels 24 h / 100 when the policy says nothing", function()
    local out, errs = rules(nil)
    assert.same({}, errs)
    assert.equal(1, #out)
    assert.same({ channel = "user:*", keep = true, ttl = 86400, size = 100, ack = false, retries = 3,
                  ack_timeout = 5 }, out[1])
  end)

  it("puts the policy's rules first, completed with the defaults, the built-in one last", function()
    local out, errs = rules({
      { channel = "room:*", ttl = 60, size = 10 },
      { channel = "user:*", events = { "invoice" }, ack = true, retries = 5, ack_timeout = 0.5 },
      { channel = "room:quiet", keep = false },
    })
    assert.same({}, errs)
    assert.equal(4, #out)
    assert.same({ channel = "room:*", keep = true, ttl = 60, size = 10, ack = false, retries = 3, ack_timeout = 5 }, out[1])
    assert.same({ "invoice" }, out[2].events)
    assert.is_true(out[2].ack)
    assert.equal(5, out[2].retries)
    assert.is_false(out[3].keep)
    assert.equal("user:*", out[4].channel)
  end)

  it("names every bad rule with its place", function()
    local _, errs = rules({
      { channel = "a*b" },
      { channel = "room:x", ttl = 0, size = 1e9, bogus = true },
      { channel = "room:y", events = {} },
      { channel = "room:z", keep = false, ack = true },
      "not a table",
      { channel = "room:w", retries = 99, ack_timeout = 0 },
    })
    local all = table.concat(errs, "\n")
    assert.matches("policy.lua:3: replay%[1%]: 'channel' must be", all)
    assert.matches("replay%[2%]: unknown key 'bogus'", all)
    assert.matches("replay%[2%]: 'ttl' must be seconds", all)
    assert.matches("replay%[2%]: 'size' must be in", all)
    assert.matches("replay%[3%]: 'events' must not be empty", all)
    assert.matches("replay%[4%]: 'ack = true' needs the message kept", all)
    assert.matches("replay%[5%]: must be a table", all)
    assert.matches("replay%[6%]: 'retries' must be in", all)
    assert.matches("replay%[6%]: 'ack_timeout' must be seconds", all)
  end)

  it("refuses a table that is not a list, and more than 64 rules", function()
    local _, errs = rules({ user = { channel = "user:*" } })
    assert.matches("must be a list of rules", table.concat(errs, "\n"))
    local many = {}
    for i = 1, 65 do many[i] = { channel = "r" .. i } end
    _, errs = rules(many)
    assert.matches("at most 64 rules", table.concat(errs, "\n"))
  end)
end)
