-- aivo.traffic: the Lua half of rate limits and connection quality, used by
-- aivo.runtime (docs/ratelimit.md, docs/quality.md). Buckets and measurements
-- live in C (aivo.core); this module turns the policy's hooks and tables into
-- what the runtime calls per message and per quality change.
local core = require "aivo.core"
local gw = require "aivo"

local DONE = gw.DONE
local format, pairs, ipairs, type, tostring, error = string.format, pairs, ipairs, type, tostring, error

local traffic = { QUALITY_EVENT = "connection:quality" }

-- ---- connection quality thresholds -----------------------------------------

local CLASSES = { "excellent", "good", "fair" } -- best first; none met: poor
local DEFAULT_THRESHOLDS = {
  excellent = { latency = 100, loss = 0, stability = 0 },
  good = { latency = 300, loss = 2, stability = 0 },
  fair = { latency = 1000, loss = 10, stability = 0 },
}
local FIELDS = { latency = "ms", loss = "%", stability = "points" }

-- The policy's `quality` table, checked and completed with the defaults:
--   quality = { excellent = 50, good = { latency = 200, loss = 1 }, fair = ... }
-- A number is a latency threshold; a table may set latency, loss and stability.
-- Problems are added to errs ("file: quality.good.loss must be ...").
function traffic.thresholds(q, file, errs)
  local out = {}
  for _, c in ipairs(CLASSES) do
    local d = DEFAULT_THRESHOLDS[c]
    out[c] = { latency = d.latency, loss = d.loss, stability = d.stability }
  end
  if type(q) ~= "table" then return out end
  local function bad(fmt, ...) errs[#errs + 1] = format("%s: " .. fmt, file, ...) end
  for k, v in pairs(q) do
    if out[k] == nil then
      bad("unknown quality class '%s' (excellent, good or fair; poor is everything else)", tostring(k))
    elseif type(v) == "number" then
      if v < 0 then bad("quality.%s must not be negative", k) else out[k].latency = v end
    elseif type(v) == "table" then
      for f, x in pairs(v) do
        if not FIELDS[f] then
          bad("quality.%s: unknown field '%s' (latency, loss, stability)", k, tostring(f))
        elseif type(x) ~= "number" or x < 0 or (f ~= "latency" and x > 100) then
          bad("quality.%s.%s must be a number%s", k, f, f == "latency" and " >= 0" or " in 0..100")
        else
          out[k][f] = x
        end
      end
    else
      bad("quality.%s must be a latency in ms or a table {latency, loss, stability}, got %s", k, type(v))
    end
  end
  -- a worse class must not be harder to meet than a better one
  for i = 2, #CLASSES do
    local better, worse = out[CLASSES[i - 1]], out[CLASSES[i]]
    for _, f in ipairs({ "latency", "loss" }) do
      if worse[f] < better[f] then
        bad("quality.%s.%s (%s) is lower than quality.%s.%s (%s)", CLASSES[i], f,
          tostring(worse[f]), CLASSES[i - 1], f, tostring(better[f]))
      end
    end
    if worse.stability > better.stability then
      bad("quality.%s.stability (%s) is higher than quality.%s.stability (%s)", CLASSES[i],
        tostring(worse.stability), CLASSES[i - 1], tostring(better.stability))
    end
  end
  return out
end

-- ---- rate limits --------------------------------------------------------------

-- A function(conn, msg) for the runtime to call before the handler chain, or
-- nil when the policy has no limit hook. It returns true when the message may
-- go on, else false, "rate_limited", message, retry_after_ms.
function traffic.limiter(policy)
  local limit, limited = policy.limit, policy.limited
  if not limit then return nil end
  local take = core.ratelimit
  return function(conn, msg)
    local rules = limit(conn, msg)
    if rules == nil or rules == false then return true end
    if type(rules) ~= "table" then
      error(format("policy 'limit' hook returned a %s; return a rule, a list of rules or nil",
        type(rules)), 0)
    end
    local ok, retry, i, refused = take(conn.id, rules)
    if ok then return true end
    if limited then
      local rule = rules.key ~= nil and rules or rules[i]
      limited(conn, msg, {
        rule = rule.name or ("#" .. i), key = rule.key, retry_after_ms = retry, refused = refused,
      })
    end
    return false, "rate_limited", format("too many messages: retry in %d ms", retry), retry
  end
end

-- ---- connection quality -------------------------------------------------------

-- The built-in answer to a client's `connection:quality` (last in its chain, so
-- a plugin handling the event goes first): the report as the ack's data, or as
-- a `connection:quality` event when no ack was asked for.
function traffic.quality_request(conn, msg)
  local info = conn.quality_info
  if type(msg.id) ~= "number" then
    conn:emit(traffic.QUALITY_EVENT, info)
    return DONE
  end
  return DONE, info
end

return traffic
