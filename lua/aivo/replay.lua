-- aivo.replay: the policy's `replay` table, checked and completed with the
-- defaults (docs/offline-replay.md). C reads the result once per policy
-- generation; nothing here runs per message.
--
--   replay = {
--     { channel = "user:*", ttl = 86400, size = 100 },            -- the default
--     { channel = "user:*", events = { "invoice" }, ack = true },  -- needs delivery
--     { channel = "room:lobby", ttl = 3600, size = 200 },
--     { channel = "room:*", keep = false },
--   }
--
-- A rule matches a channel (a room name: exact, or a prefix ending in "*") and,
-- when it lists events, only those events. The first matching rule decides; the
-- built-in rule { channel = "user:*", ttl = 86400, size = 100 } comes after the
-- policy's, and anything no rule matches is not kept.
local format, pairs, ipairs, type, tostring = string.format, pairs, ipairs, type, tostring

local replay = {}

replay.DEFAULT_RULE = { channel = "user:*", keep = true, ttl = 86400, size = 100, ack = false,
                        retries = 3, ack_timeout = 5 }

local MAX_RULES = 64
local MAX_EVENTS = 64
local MAX_SIZE = 100000          -- messages per stream (the stores cap it lower: history.*)
local MAX_TTL = 30 * 86400       -- seconds
local MAX_RETRIES = 20
local FIELDS = {
  channel = "string", events = "table", keep = "boolean", ttl = "number", size = "number",
  ack = "boolean", retries = "number", ack_timeout = "number",
}

local function number_in(v, lo, hi)
  return type(v) == "number" and v == v and v >= lo and v <= hi
end

-- One rule, completed; problems go to errs prefixed with where.
local function check_rule(r, where, errs)
  local function bad(fmt, ...) errs[#errs + 1] = where .. ": " .. format(fmt, ...) end
  if type(r) ~= "table" then
    bad("must be a table, got %s", type(r))
    return nil
  end
  for k, v in pairs(r) do
    local want = FIELDS[k]
    if not want then bad("unknown key '%s'", tostring(k))
    elseif type(v) ~= want then bad("'%s' must be a %s, got %s", k, want, type(v)) end
  end
  local out = {}
  for k, v in pairs(replay.DEFAULT_RULE) do out[k] = v end
  local ch = r.channel
  if type(ch) ~= "string" or #ch == 0 or #ch > 200 or ch:find("*", 1, true) and ch:find("*", 1, true) ~= #ch then
    bad("'channel' must be a room name of 1..200 bytes, or a prefix ending in '*'")
  end
  out.channel = ch
  if r.keep ~= nil then out.keep = r.keep end
  if r.ttl ~= nil and not number_in(r.ttl, 1, MAX_TTL) then bad("'ttl' must be seconds in [1, %d]", MAX_TTL) end
  if r.size ~= nil and not number_in(r.size, 1, MAX_SIZE) then bad("'size' must be in [1, %d]", MAX_SIZE) end
  if r.retries ~= nil and not number_in(r.retries, 0, MAX_RETRIES) then
    bad("'retries' must be in [0, %d]", MAX_RETRIES)
  end
  if r.ack_timeout ~= nil and not number_in(r.ack_timeout, 0.05, 3600) then
    bad("'ack_timeout' must be seconds in [0.05, 3600]")
  end
  for _, k in ipairs { "ttl", "size", "ack", "retries", "ack_timeout" } do
    if r[k] ~= nil then out[k] = r[k] end
  end
  out.size = type(out.size) == "number" and math.floor(out.size) or out.size
  out.retries = type(out.retries) == "number" and math.floor(out.retries) or out.retries
  if r.events ~= nil then
    local ev = {}
    if type(r.events) == "table" then
      for k, e in pairs(r.events) do
        if type(k) ~= "number" or type(e) ~= "string" or #e == 0 or #e > 200 then
          bad("'events' must be a list of event names (1..200 bytes)")
          break
        end
        ev[#ev + 1] = e
      end
      if #ev > MAX_EVENTS then bad("'events' lists at most %d names", MAX_EVENTS) end
      if #ev == 0 then bad("'events' must not be empty (leave it out for every event)") end
    end
    out.events = ev
  end
  if out.ack and not out.keep then bad("'ack = true' needs the message kept (keep = false contradicts it)") end
  return out
end

-- The policy's replay table (nil: only the default rule) -> the list C reads.
function replay.rules(t, where, errs)
  local out = {}
  if t ~= nil then
    if type(t) ~= "table" then
      errs[#errs + 1] = format("%s: must be a list of rules, got %s", where, type(t))
      t = {}
    end
    local n = 0
    for k in pairs(t) do
      n = n + 1
      if type(k) ~= "number" then
        errs[#errs + 1] = format("%s: must be a list of rules (found key '%s')", where, tostring(k))
      end
    end
    if n > MAX_RULES then errs[#errs + 1] = format("%s: at most %d rules", where, MAX_RULES) end
    for i, r in ipairs(t) do
      out[#out + 1] = check_rule(r, format("%s: replay[%d]", where, i), errs)
    end
  end
  local d = {}
  for k, v in pairs(replay.DEFAULT_RULE) do d[k] = v end
  out[#out + 1] = d
  return out
end

return replay
