-- Built-in config: the lowest layer, under the policy's config, AIVO_* env and --set.
-- Every key here can be overridden; its value's type is the type overrides are coerced to.
return {
  server = { max_message_size = 1048576, ping_interval = 20, idle_timeout = 50,
             sendq_max_bytes = 4194304, sendq_max_messages = 4096, drain_timeout = 5 },
  rooms  = { max_per_conn = 100 },
  lua    = { instruction_budget = 10000000, memory_limit_mb = 128, jit = false },
}
