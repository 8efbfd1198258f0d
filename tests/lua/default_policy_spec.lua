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

  it("requires a token and names the connection after its subject", function()
    local hooks = runtime.load(path)
    assert.same({ true, "user-42" }, { hooks.on_auth({ sub = "user-42" }, { headers = {} }) })
    assert.same({ false, "token_missing", "a token is required" }, { hooks.on_auth(nil, { headers = {} }) })
    assert.same({ false, "invalid_claims", "the token has no subject (sub)" },
      { hooks.on_auth({ learnerId = "l" }, {}) })
    assert.same({ false, "invalid_claims", "the token has no subject (sub)" }, { hooks.on_auth({ sub = 7 }, {}) })
    -- the identity the auth hook chose reaches on_connect as req.user
    assert.same({ true, "user-42" }, { hooks.on_connect(fake.conn({ id = 1 }), { user = "user-42", headers = {} }) })
  end)

  it("checks a learnerId the client names against the token's", function()
    local hooks = runtime.load(path)
    local function auth(claims, learner)
      return { hooks.on_auth(claims, { auth = { learnerId = learner, token = "x" } }) }
    end
    assert.same({ true, "u1" }, auth({ sub = "u1", learnerId = "l1" }, "l1"))
    assert.same({ true, "u1" }, auth({ sub = "u1" }, "u1"))     -- only sub: it must match
    assert.same({ true, "u1" }, auth({ sub = "u1", learnerId = 5 }, "5"))
    assert.same({ false, "learner_mismatch", "learnerId does not match the token" },
      auth({ sub = "u1", learnerId = "l1" }, "l2"))
    assert.same({ false, "learner_mismatch", "learnerId does not match the token" },
      auth({ sub = "u1" }, "someone-else"))
    assert.same({ false, "learner_mismatch", "learnerId does not match the token" },
      auth({ sub = "u1", learnerId = "l1" }, "u1"))  -- the claim wins over sub
    assert.same({ true, "u1" }, { hooks.on_auth({ sub = "u1", learnerId = "l1" }, { auth = {} }) })
  end)

  it("requires tokens by default and reads CORS_ORIGIN", function()
    local cfg = runtime.load(path).config
    assert.is_true(cfg.auth.required)
    assert.equal("HS256", cfg.auth.alg)
    assert.equal(30, cfg.auth.leeway)
    assert.equal("http://localhost:3000", cfg.origins.allowed)
    fake.reset({ env = { CORS_ORIGIN = "https://a.example,https://b.example" } })
    assert.equal("https://a.example,https://b.example", runtime.load(path).config.origins.allowed)
    fake.reset({ env = { CORS_ORIGIN = "https://a.example", AIVO_ORIGINS_ALLOWED = "https://c.example" } })
    assert.equal("https://c.example", runtime.load(path).config.origins.allowed)
    local hooks = runtime.load(path, { { key = "origins.allowed", value = "*" } })
    assert.equal("*", hooks.config.origins.allowed)
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
