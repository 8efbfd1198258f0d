/* The gateway's own metrics: the old service's names (its Grafana panels query them) and
 * aivo_* for the rest. Registered once at start; modules add to the series directly. */
#ifndef GW_STATS_H
#define GW_STATS_H

#include <stddef.h>

#include "metrics.h"

typedef struct gw_stats {
  /* the old service's names */
  gw_series_t *connections;       /* websocket_connections_total: a gauge, as its panels use it */
  gw_series_t *messages_received; /* websocket_messages_received_total */
  gw_series_t *messages_sent;     /* websocket_messages_sent_total */
  gw_series_t *latency_ms;        /* websocket_message_latency_ms: receipt to handled/acked */
  gw_metric_t *errors;            /* websocket_errors_total{type} */
  gw_series_t *rate_limited;      /* websocket_rate_limited_total */
  gw_metric_t *sessions_active;   /* websocket_sessions_active (set by the agent plugin) */
  gw_metric_t *quality;           /* websocket_connection_quality{quality} */
  /* aivo_* */
  gw_series_t *policy_generation;
  gw_metric_t *reloads;           /* {result} */
  gw_series_t *reload_seconds;
  gw_metric_t *lua_errors;        /* {plugin,hook,kind} */
  gw_series_t *lua_memory;
  gw_metric_t *connections_by_protocol; /* {protocol} */
  gw_series_t *bytes_received, *bytes_sent;
  gw_series_t *sendq_dropped;     /* messages dropped with a slow consumer's queue */
  gw_series_t *slow_consumer_closes;
  gw_metric_t *auth_refusals;     /* {reason} */
  gw_series_t *connections_opened;
  /* traffic control (ratelimit.c, quality.c) */
  gw_metric_t *rate_limited_rules;  /* aivo_rate_limited_total{rule} */
  gw_metric_t *connections_refused; /* aivo_connections_refused_total{reason}: HTTP 429 */
  gw_series_t *rtt;                 /* aivo_rtt_seconds: ping round trips (base units: promtool) */
} gw_stats_t;

extern gw_stats_t gw_stats;

int gw_stats_init(void);
/* websocket_errors_total{type} += 1 */
void gw_stats_error(const char *type);
/* aivo_inflight_refused_total{budget} += 1: a process-wide budget refused a connection. */
void gw_stats_budget_refusal(const char *budget);
/* A slow consumer closed with `dropped` messages still queued. */
void gw_stats_slow_consumer(size_t dropped_messages);
/* Before a scrape: the gauges owned by upper layers (the Lua memory of the running policy)
 * are brought up to date by the function the gateway registered (NULL: none). */
void gw_stats_set_refresh(void (*fn)(void));
void gw_stats_refresh(void);

#endif
