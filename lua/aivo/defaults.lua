-- Built-in config: the lowest layer, under the policy's config, AIVO_* env and --set.
-- Every key here can be overridden; its value's type is the type overrides are coerced to.
return {
  server = { max_message_size = 1048576, ping_interval = 20, idle_timeout = 50,
             sendq_max_bytes = 4194304, sendq_max_messages = 4096, drain_timeout = 5,
             max_inflight_bytes = 67108864, max_sendq_total_bytes = 1073741824 },
  rooms  = { max_per_conn = 100 },
  -- docs/policy-api.md "Limits": per hook call an instruction budget (string matching counts
  -- too) and a wall-clock bound; per load (startup, reload) a wall-clock bound. The memory cap
  -- holds from a load's first instruction (taken from AIVO_LUA_MEMORY_LIMIT_MB / --set there).
  lua    = { instruction_budget = 10000000, memory_limit_mb = 128, jit = false,
             call_timeout_ms = 1000, load_timeout_ms = 2000 },
  -- docs/ratelimit.md: connection limits per address and identity (0: off; behind a load
  -- balancer every client shares one address). Message limits come from the policy's limit hook.
  connections = { per_ip_per_second = 0, max_per_ip = 0, max_per_user = 0 },
  -- docs/quality.md: seconds between checks (0: not measured), before an unanswered ping
  -- counts as lost, and during which reconnects of an identity lower its stability.
  quality = { check_interval = 10, pong_timeout = 5, stability_window = 300 },
  -- docs/policy-api.md, "The plugin store": bytes of all entries together, bytes of one
  -- value (its JSON text) and entries per plugin; a write over a bound returns nil, err.
  store = { max_bytes = 67108864, max_value_bytes = 65536, max_keys = 10000 },
  -- docs/security.md. Secrets never live here: JWT_SECRET / NEXTAUTH_SECRET, or auth.keys.
  auth   = { required = true,      -- no token: refused (HTTP 401 token_missing)
             alg = "HS256",        -- pinned algorithm of JWT_SECRET / NEXTAUTH_SECRET
             leeway = 30,          -- seconds of clock skew allowed on exp and nbf
             issuer = "",          -- when set, iss must equal it
             audience = "",        -- when set, aud must contain it
             cookie = "",          -- a cookie that may carry the token on /ws ("": none)
             query = true,         -- accept ?token= on /ws (the least safe source)
             refresh_grace = 30,   -- seconds to answer auth:refresh once exp has passed
             keys = {} },          -- { kid =, alg =, file = | env = }: public keys, rotation
  -- Browser origins allowed to connect (comma list, * for any); CORS_ORIGIN sets it too.
  origins = { allowed = "http://localhost:3000", require = false },
  -- docs/socketio.md: Engine.IO heartbeat (ms: a ping every ping_interval, closed when no pong
  -- within ping_timeout), the close of a session with no namespace after connect_timeout, an
  -- unfinished upgrade probe dropped after upgrade_timeout, maxPayload (bytes), and the field
  -- of the CONNECT auth payload that holds the JWT ("": the payload carries none).
  -- recovery.max_disconnection_ms: Socket.IO connection state recovery (0: off), like the
  -- Socket.IO server's connectionStateRecovery.maxDisconnectionDuration.
  socketio = { ping_interval = 25000, ping_timeout = 20000, connect_timeout = 45000,
               upgrade_timeout = 10000, max_payload = 1000000, token_field = "token",
               recovery = { max_disconnection_ms = 0 } },
  -- docs/scaling.md: the Redis that makes several gateways one ("" url and host: none, the
  -- gateway runs alone). REDIS_URL, REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD and
  -- --redis override these; read at start (a reload that changes them logs a warning).
  -- docs/offline-replay.md: bounds of the store of kept messages (memory, or Redis Streams
  -- with Redis): streams, bytes in all and in one stream (memory), messages of one stream
  -- and bytes of one message (both). Read at start.
  history = { max_streams = 10000, max_total_bytes = 67108864, max_stream_bytes = 1048576,
              max_stream_len = 1000, max_message_bytes = 65536 },
  redis = { url = "", host = "", port = 6379, db = 0, prefix = "aivo:", required = false,
            connect_timeout = 2000, command_timeout = 2000, presence_ttl = 30 },
}
