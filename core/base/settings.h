/* The settings every layer reads: read from the running policy generation's merged config
 * (policy.c) and published here by the gateway at each swap, so lower layers read them
 * without knowing the policy exists. */
#ifndef GW_SETTINGS_H
#define GW_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

/* A class is met when latency < latency_ms, loss < loss_pct (loss_pct 0: no loss at all)
 * and stability >= stability. Classes are tried best first; none met: poor. */
typedef struct gw_quality_threshold {
  double latency_ms, loss_pct, stability;
} gw_quality_threshold_t;

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
} gw_settings_t;

/* The settings in force (never NULL once the gateway has loaded its first generation). */
const gw_settings_t *gw_settings(void);
/* The gateway, at start and at every generation swap; s stays the caller's. */
void gw_settings_set(const gw_settings_t *s);

#endif
