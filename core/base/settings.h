/* The settings every layer reads: read from the running policy generation's merged config
 * (policy.c) and published here by the gateway at each swap, so lower layers read them
 * without knowing the policy exists. */
#ifndef GW_SETTINGS_H
#define GW_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "replay_rule.h"

/* A class is met when latency < latency_ms, loss < loss_pct (loss_pct 0: no loss at all)
 * and stability >= stability. Classes are tried best first; none met: poor. */
typedef struct gw_quality_threshold {
  double latency_ms, loss_pct, stability;
} gw_quality_threshold_t;

/* socketio.* (Engine.IO timings and payload bound, the CONNECT payload's JWT field) */
typedef struct gw_socketio_settings {
  unsigned ping_interval_ms, ping_timeout_ms; /* socketio.ping_interval, socketio.ping_timeout */
  unsigned connect_timeout_ms;                /* socketio.connect_timeout */
  unsigned upgrade_timeout_ms;                /* socketio.upgrade_timeout */
  size_t max_payload;                         /* socketio.max_payload */
  char token_field[64]; /* socketio.token_field: the auth payload's JWT ("": none) */
  /* socketio.recovery.max_disconnection_ms: connection state recovery (docs/socketio.md) is
   * on when > 0; a session's events stay recoverable this long after it is lost */
  unsigned recovery_max_disconnection_ms;
} gw_socketio_settings_t;

/* redis.* (docs/scaling.md): read at start only; REDIS_URL, REDIS_HOST... and --redis
 * override them (app/cluster.c) */
typedef struct gw_redis_settings {
  char url[1024];  /* redis.url ("": none) */
  char host[256];  /* redis.host ("": none) */
  int port, db;    /* redis.port, redis.db */
  char prefix[65]; /* redis.prefix: namespaces every channel and key */
  int required;    /* redis.required: /readyz is 503 while Redis is down */
  unsigned connect_timeout_ms, command_timeout_ms;
  unsigned presence_ttl_ms; /* redis.presence_ttl: a dead gateway's presence entries expire */
} gw_redis_settings_t;

/* history.* (docs/offline-replay.md): the bounds of the stores of kept messages; read at
 * start (a store is created once) */
typedef struct gw_history_settings {
  size_t max_streams;       /* memory store: streams kept (least recently written evicted) */
  size_t max_total_bytes;   /* memory store: payload bytes of all streams */
  size_t max_stream_bytes;  /* memory store: payload bytes of one stream */
  size_t max_stream_len;    /* both: messages of one stream (a rule's size is capped by it) */
  size_t max_message_bytes; /* both: one kept message (larger ones are delivered, not kept) */
} gw_history_settings_t;

typedef struct gw_settings {
  size_t max_message_size;
  size_t sendq_max_bytes, sendq_max_messages;
  /* process-wide: buffers of messages being received (rxbuf.h), bytes in every send queue */
  size_t max_inflight_bytes, max_sendq_total_bytes;
  size_t max_rooms;
  double ping_interval_s, idle_timeout_s, drain_timeout_s;
  uint64_t instruction_budget;
  size_t memory_limit;
  uint64_t call_timeout_ms, load_timeout_ms; /* wall clock of one hook call, of one load */
  int jit;
  /* traffic control (ratelimit.c, quality.c); 0 turns a connection limit off */
  double conn_per_ip_per_second;
  size_t max_conns_per_ip, max_conns_per_user;
  double quality_interval_s, pong_timeout_s, stability_window_s;
  gw_quality_threshold_t quality[3]; /* excellent, good, fair: from the policy's `quality` */
  /* the plugin store's bounds (plugin_store.h): store.max_bytes, max_value_bytes, max_keys */
  size_t store_max_bytes, store_max_value_bytes, store_max_keys;
  gw_socketio_settings_t socketio;
  gw_redis_settings_t redis;
  gw_history_settings_t history;
  /* the policy's replay rules, the built-in one last (owned by the policy generation) */
  gw_replay_rule_t *replay;
  size_t n_replay;
  /* the policy's Socket.IO namespaces besides "/" (owned by the policy generation) */
  char **namespaces;
  size_t n_namespaces;
} gw_settings_t;

/* The settings in force (NULL before the gateway has loaded its first generation). */
const gw_settings_t *gw_settings(void);
/* The gateway, at start and at every generation swap; s stays the caller's. */
void gw_settings_set(const gw_settings_t *s);

#endif
