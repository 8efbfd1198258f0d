-- Rate limits and connection quality in the runtime: the limit hook runs before
-- every handler, its rules go to the core (the fake keeps the same token
-- buckets), refusals carry retry_after_ms, `limited` sees each one; quality
-- thresholds are checked at load, `connection:quality` is answered, and the
-- quality hooks run in order. The buckets themselves are tested in C
-- (tests/unit/test_ratelimit.c) and end to end (tests/integration).
local fake = require "helpers.fake_core"
local runtime = require "aivo.runtime"

local DEFAULT = fake.root .. "/policies/default.lua"

local function policy(body, plugins)
  local files = { ["policy.lua"] = 'local gw = require "aivo"\nreturn gw.policy {\n' .. body .. "\n}\n" }
  for name, source in pairs(plugins or {}) do
    files["plugins/" .. name .. ".lua"] = 'local gw = require "aivo"\nreturn gw.plugin {\n' .. source .. "\n}\n"
  end
  local dir = fake.tree(files)
  fake.reset({ policy_dir = dir, plugin_path = fake.root .. "/plugins" })
  return dir .. "/policy.lua"
end

local function must_load(path, overrides)
  local hooks, errs = runtime.load(path, overrides)
  assert(hooks, errs and table.concat(errs, "\n"))
  return hooks
end

-- Sends n echo messages; returns handled, refused and the results of the refusals.
local function burst(hooks, conn, n, event)
  local handled, refused, last = 0, 0, nil
  for i = 1, n do
    local r = { hooks.on_message(conn, { event = event or "echo", data = i, id = i }) }
    if r[1] then handled = handled + 1 else refused, last = refused + 1, r end
  end
  return handled, refused, last
end

local function set(key, value) return { key = key, value = value } end

after_each(function() fake.cleanup() end)

describe("the default policy's rate limit", function()
  before_each(function() fake.reset() end)

  it("handles the first 100 of a burst of 150 and refuses the other 50", function()
    local hooks = must_load(DEFAULT)
    local conn = fake.conn({ user = "ann" })
    local handled, refused, last = burst(hooks, conn, 150)
    assert.equal(100, handled)
    assert.equal(50, refused)
    assert.same({ false, "rate_limited", "too many messages: retry in 600 ms", 600 }, last)
    assert.equal(50, #fake.refusals)
    assert.equal("per_connection", fake.refusals[1].rule)
    -- a refused message reached no handler: 100 echoes were acked, nothing else happened
    assert.equal(0, #fake.emits)
  end)

  it("refills one message per 600 ms, and the whole burst after a minute", function()
    local hooks = must_load(DEFAULT)
    local conn = fake.conn()
    burst(hooks, conn, 100)
    fake.time = 599
    assert.equal(0, (burst(hooks, conn, 1)))
    fake.time = 600
    assert.equal(1, (burst(hooks, conn, 3)))
    fake.time = 600 + 60000
    assert.equal(100, (burst(hooks, conn, 150)))
  end)

  it("keeps one bucket per connection", function()
    local hooks = must_load(DEFAULT)
    local a, b = fake.conn({ user = "same" }), fake.conn({ user = "same" })
    assert.equal(100, (burst(hooks, a, 120)))
    assert.equal(100, (burst(hooks, b, 120)))
  end)

  it("takes the number from ratelimit.per_minute; 0 turns it off", function()
    local hooks = must_load(DEFAULT, { set("ratelimit.per_minute", "10") })
    assert.equal(10, (burst(hooks, fake.conn(), 20)))
    fake.reset()
    hooks = must_load(DEFAULT, { set("ratelimit.per_minute", "0") })
    local handled, refused = burst(hooks, fake.conn(), 500)
    assert.equal(500, handled)
    assert.equal(0, refused)
    fake.reset({ env = { AIVO_RATELIMIT_PER_MINUTE = "3" } })
    hooks = must_load(DEFAULT)
    assert.equal(3, (burst(hooks, fake.conn(), 5)))
  end)

  it("closes with 4429 after ratelimit.close_after refusals in a row, and only then", function()
    local hooks = must_load(DEFAULT, { set("ratelimit.close_after", "3") })
    local conn = fake.conn()
    burst(hooks, conn, 102)
    assert.equal(0, #fake.closes)
    fake.time = 600 -- one more passes: the count of refusals in a row starts again
    assert.equal(1, (burst(hooks, conn, 1)))
    burst(hooks, conn, 2)
    assert.equal(0, #fake.closes)
    burst(hooks, conn, 1)
    assert.same({ { id = conn.id, code = 4429, reason = "rate limited" } }, fake.closes)
  end)

  it("never closes by default", function()
    local hooks = must_load(DEFAULT)
    burst(hooks, fake.conn(), 1000)
    assert.equal(0, #fake.closes)
  end)

  it("survives a reload: the buckets live in the core", function()
    local hooks = must_load(DEFAULT)
    local conn = fake.conn()
    assert.equal(60, (burst(hooks, conn, 60)))
    hooks = must_load(DEFAULT) -- a new generation; fake.reset() not called
    assert.equal(40, (burst(hooks, conn, 60)))
  end)
end)

describe("the limit hook", function()
  it("may return several rules: per connection and per user", function()
    local path = policy [[
      plugins = { "echo" },
      limit = function(conn, msg)
        return {
          { name = "conn", key = "conn:" .. conn.id, limit = 5, window = 60 },
          { name = "user", key = "user:" .. conn.user, limit = 8, window = 60 },
        }
      end,
    ]]
    local hooks = must_load(path)
    local a, b = fake.conn({ user = "bob" }), fake.conn({ user = "bob" })
    assert.equal(5, (burst(hooks, a, 7)))
    assert.equal("conn", fake.refusals[1].rule)
    local handled, _, last = burst(hooks, b, 7)
    assert.equal(3, handled) -- 8 for bob in all: a's refused messages took nothing
    assert.equal("user", fake.refusals[#fake.refusals].rule)
    assert.equal("rate_limited", last[2])
  end)

  it("may limit per event, with a cost, and skip messages by returning nil", function()
    local path = policy [[
      plugins = { "echo" },
      limit = function(conn, msg)
        if msg.event == "echo" then return nil end
        return { key = "ev:" .. msg.event .. ":" .. conn.id, limit = 10, window = 1,
                 cost = msg.data and 5 or 1 }
      end,
      message = function(conn, msg) if msg.event ~= "echo" then return gw.DONE end end,
    ]]
    local hooks = must_load(path)
    local conn = fake.conn()
    assert.equal(300, (burst(hooks, conn, 300, "echo")))
    assert.equal(2, (burst(hooks, conn, 5, "upload"))) -- cost 5 of 10
    local r = { hooks.on_message(conn, { event = "upload", data = 1, id = 1 }) }
    assert.same({ false, "rate_limited", "too many messages: retry in 500 ms", 500 }, r)
    assert.equal("#1", fake.refusals[#fake.refusals].rule) -- no name: its position
    -- another event has its own bucket
    assert.equal(2, (burst(hooks, conn, 5, "typing")))
  end)

  it("passes each refusal to `limited` with the rule, key, wait and refusals in a row", function()
    local path = policy [[
      plugins = { "echo" },
      limit = function(conn) return { name = "tight", key = "k" .. conn.id, limit = 1, window = 2 } end,
      limited = function(conn, msg, info)
        conn:emit("limited", { event = msg.event, rule = info.rule, key = info.key,
                               retry = info.retry_after_ms, refused = info.refused })
      end,
    ]]
    local hooks = must_load(path)
    local conn = fake.conn()
    burst(hooks, conn, 3)
    assert.same({
      { event = "limited", data = { event = "echo", rule = "tight", key = "k" .. conn.id, retry = 2000, refused = 1 } },
      { event = "limited", data = { event = "echo", rule = "tight", key = "k" .. conn.id, retry = 2000, refused = 2 } },
    }, fake.outbox(conn))
  end)

  it("can use conn.quality, e.g. a lower limit on poor links", function()
    local path = policy [[
      plugins = { "echo" },
      limit = function(conn)
        return { key = "c" .. conn.id, limit = conn.quality == "poor" and 2 or 50, window = 60 }
      end,
    ]]
    local hooks = must_load(path)
    assert.equal(2, (burst(hooks, fake.conn({ quality = "poor" }), 10)))
    assert.equal(10, (burst(hooks, fake.conn({ quality = "good" }), 10)))
  end)

  it("fails the message (closed) when it returns something else or a bad rule", function()
    local path = policy [[
      plugins = { "echo" },
      limit = function(conn, msg) return msg.data end,
    ]]
    local hooks = must_load(path)
    local conn = fake.conn()
    assert.has_error(function() hooks.on_message(conn, { event = "echo", data = "x" }) end,
      "policy 'limit' hook returned a string; return a rule, a list of rules or nil")
    assert.has_error(function() hooks.on_message(conn, { event = "echo", data = { key = "k", limt = 1 } }) end)
    assert.has_error(function() hooks.on_message(conn, { event = "echo", data = { key = "k", limit = 1 } }) end)
    assert.has_error(function()
      hooks.on_message(conn, { event = "echo", data = { key = "k", limit = 1, window = 1, cost = 2 } })
    end)
    -- false or nil: no limit
    assert.same({ true, false }, { hooks.on_message(conn, { event = "echo", data = false, id = 1 }) })
  end)

  it("is type-checked at load, with limited and quality_change", function()
    local hooks, errs = runtime.load(policy [[ limit = 5, limited = "x", quality_change = {} ]])
    assert.is_nil(hooks)
    table.sort(errs)
    assert.equal(3, #errs)
    assert.matches("policy key 'limit' must be a function, got number", errs[1], 1, true)
    assert.matches("policy key 'limited' must be a function, got string", errs[2], 1, true)
    assert.matches("policy key 'quality_change' must be a function, got table", errs[3], 1, true)
  end)
end)

describe("quality thresholds", function()
  it("default to the old indicator's: excellent < 100 ms & 0 %, good < 300 & 2, fair < 1000 & 10", function()
    local hooks = must_load(policy "")
    assert.same({
      excellent = { latency = 100, loss = 0, stability = 0 },
      good = { latency = 300, loss = 2, stability = 0 },
      fair = { latency = 1000, loss = 10, stability = 0 },
    }, hooks.quality)
  end)

  it("take a number as a latency and a table for any field", function()
    local hooks = must_load(policy [[
      quality = { excellent = 50, good = { latency = 150, loss = 1 }, fair = { loss = 5 } },
    ]])
    assert.same({
      excellent = { latency = 50, loss = 0, stability = 0 },
      good = { latency = 150, loss = 1, stability = 0 },
      fair = { latency = 1000, loss = 5, stability = 0 },
    }, hooks.quality)
    hooks = must_load(policy [[ quality = { excellent = { stability = 100 }, good = { stability = 60 } } ]])
    assert.same({ 100, 60, 0 }, { hooks.quality.excellent.stability, hooks.quality.good.stability,
                                  hooks.quality.fair.stability })
  end)

  it("report every mistake at load", function()
    local _, errs = runtime.load(policy [[
      quality = { excelent = 50, good = { latency = -1, lost = 1 }, fair = "slow" },
    ]])
    local text = table.concat(errs, "\n")
    assert.matches("unknown quality class 'excelent'", text, 1, true)
    assert.matches("quality.good.latency must be a number >= 0", text, 1, true)
    assert.matches("quality.good: unknown field 'lost'", text, 1, true)
    assert.matches("quality.fair must be a latency in ms or a table {latency, loss, stability}, got string", text, 1, true)
    local _, errs2 = runtime.load(policy [[ quality = { excellent = 500, good = { loss = 50 } } ]])
    local text2 = table.concat(errs2, "\n")
    assert.matches("quality.good.latency (300) is lower than quality.excellent.latency (500)", text2, 1, true)
    assert.matches("quality.fair.loss (10) is lower than quality.good.loss (50)", text2, 1, true)
    local _, errs3 = runtime.load(policy [[ quality = { good = { stability = 60 } } ]])
    assert.matches("quality.good.stability (60) is higher than quality.excellent.stability (0)",
      table.concat(errs3, "\n"), 1, true)
  end)
end)

describe("connection:quality", function()
  local info = { quality = "good", latency = 120.5, jitter = 3, packetLoss = 0, stability = 100 }

  it("answers a request with an ack with the connection's report", function()
    local hooks = must_load(policy [[ plugins = { "echo" } ]])
    local conn = fake.conn({ quality = "good", quality_info = info })
    assert.same({ true, info }, { hooks.on_message(conn, { event = "connection:quality", id = 3 }) })
    assert.same({}, fake.outbox(conn))
  end)

  it("answers a request without an ack with the event", function()
    local hooks = must_load(policy "")
    local conn = fake.conn({ quality_info = info })
    assert.same({ true }, { hooks.on_message(conn, { event = "connection:quality" }) })
    assert.same({ { event = "connection:quality", data = info } }, fake.outbox(conn))
  end)

  it("is counted by the rate limit like any message", function()
    local hooks = must_load(policy [[ limit = function(c) return { key = "q", limit = 1, window = 9 } end ]])
    local conn = fake.conn({ quality_info = info })
    assert.is_true((hooks.on_message(conn, { event = "connection:quality", id = 1 })))
    assert.is_false((hooks.on_message(conn, { event = "connection:quality", id = 2 })))
  end)

  it("can be handled by a plugin first", function()
    local hooks = must_load(policy([[ plugins = { "mine" } ]], {
      mine = [[ name = "mine", events = { ["connection:quality"] = function() return gw.DONE, "mine" end } ]],
    }))
    assert.same({ true, "mine" }, { hooks.on_message(fake.conn(), { event = "connection:quality", id = 1 }) })
  end)

  it("runs quality_change, then each plugin's on_quality_change, on a class change", function()
    local hooks = must_load(policy([[
      plugins = { "low", "high" },
      quality_change = function(conn, q) conn:emit("seen", "policy:" .. q.previous .. ">" .. q.quality) end,
    ]], {
      low = [[ name = "low", priority = 1,
               on_quality_change = function(conn, q) conn:emit("seen", "low:" .. q.quality) end ]],
      high = [[ name = "high", priority = 9,
                on_quality_change = function(conn, q) conn:emit("seen", "high:" .. q.quality) end ]],
    }))
    local conn = fake.conn()
    hooks.on_quality(conn, { quality = "poor", previous = "good", packetLoss = 20, stability = 100 })
    assert.same({
      { event = "seen", data = "policy:good>poor" },
      { event = "seen", data = "high:poor" },
      { event = "seen", data = "low:poor" },
    }, fake.outbox(conn))
  end)

  it("has a hook even when the policy sets none", function()
    local hooks = must_load(policy "")
    assert.is_function(hooks.on_quality)
    hooks.on_quality(fake.conn(), { quality = "fair", previous = "unknown" })
  end)
end)
