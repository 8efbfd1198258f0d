#include "stats.h"

gw_stats_t gw_stats;

static const double latency_ms_buckets[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500};
static const double reload_buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static gw_series_t *plain(gw_metric_type_t t, const char *name, const char *help) {
  return gw_metric_series(gw_metric_register(t, name, help, NULL, NULL, 0), NULL);
}

int gw_stats_init(void) {
  gw_stats_t *s = &gw_stats;
  s->connections = plain(GW_METRIC_GAUGE, "websocket_connections_total",
                         "Current WebSocket connections (a gauge despite the name, kept for existing dashboards).");
  s->messages_received = plain(GW_METRIC_COUNTER, "websocket_messages_received_total", "Messages received from clients.");
  s->messages_sent = plain(GW_METRIC_COUNTER, "websocket_messages_sent_total", "Messages written to clients.");
  s->latency_ms = gw_metric_series(
      gw_metric_register(GW_METRIC_HISTOGRAM, "websocket_message_latency_ms",
                         "Time from receipt of a message to its handling (ack queued), in milliseconds.",
                         NULL, latency_ms_buckets, N(latency_ms_buckets)), NULL);
  s->errors = gw_metric_register(GW_METRIC_COUNTER, "websocket_errors_total", "Errors by type.", "type", NULL, 0);
  s->rate_limited = plain(GW_METRIC_COUNTER, "websocket_rate_limited_total", "Messages refused by a rate limit.");
  s->sessions_active = gw_metric_register(GW_METRIC_GAUGE, "websocket_sessions_active",
                                          "Active agent sessions.", NULL, NULL, 0);
  gw_metric_series(s->sessions_active, NULL);
  s->quality = gw_metric_register(GW_METRIC_GAUGE, "websocket_connection_quality",
                                  "Connections by measured link quality.", "quality", NULL, 0);

  s->policy_generation = plain(GW_METRIC_GAUGE, "aivo_policy_generation", "Generation number of the running policy.");
  s->reloads = gw_metric_register(GW_METRIC_COUNTER, "aivo_policy_reload_total", "Policy reloads by result.", "result", NULL, 0);
  gw_metric_series1(s->reloads, "ok");
  gw_metric_series1(s->reloads, "error");
  s->reload_seconds = gw_metric_series(
      gw_metric_register(GW_METRIC_HISTOGRAM, "aivo_policy_reload_duration_seconds",
                         "Time to build and validate a policy generation.", NULL, reload_buckets, N(reload_buckets)), NULL);
  s->lua_errors = gw_metric_register(GW_METRIC_COUNTER, "aivo_lua_errors_total",
                                     "Policy hook failures by plugin, hook and kind (error, budget, memory).",
                                     "plugin,hook,kind", NULL, 0);
  s->lua_memory = plain(GW_METRIC_GAUGE, "aivo_lua_memory_bytes", "Memory used by the running policy's Lua state.");
  s->connections_by_protocol = gw_metric_register(GW_METRIC_GAUGE, "aivo_connections",
                                                  "Current connections by protocol.", "protocol", NULL, 0);
  gw_metric_series1(s->connections_by_protocol, "ws");
  s->connections_opened = plain(GW_METRIC_COUNTER, "aivo_connections_opened_total", "Connections accepted since start.");
  s->bytes_received = plain(GW_METRIC_COUNTER, "aivo_received_bytes_total", "Message payload bytes received.");
  s->bytes_sent = plain(GW_METRIC_COUNTER, "aivo_sent_bytes_total", "Message payload bytes written.");
  s->sendq_dropped = plain(GW_METRIC_COUNTER, "aivo_sendq_dropped_messages_total",
                           "Queued messages dropped when a slow consumer was closed.");
  s->slow_consumer_closes = plain(GW_METRIC_COUNTER, "aivo_slow_consumer_closes_total",
                                  "Connections closed because their send queue was full.");
  s->auth_refusals = gw_metric_register(GW_METRIC_COUNTER, "aivo_auth_refusals_total",
                                        "Connections refused at authentication, by reason.", "reason", NULL, 0);
  /* traffic control */
  static const double rtt_buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  s->rate_limited_rules = gw_metric_register(GW_METRIC_COUNTER, "aivo_rate_limited_total",
                                             "Messages refused by a rate limit, by the rule exceeded (a message "
                                             "over two rules counts for both).", "rule", NULL, 0);
  s->connections_refused = gw_metric_register(GW_METRIC_COUNTER, "aivo_connections_refused_total",
                                              "Connections refused by a connection limit (HTTP 429 or close 4429), "
                                              "by reason.", "reason", NULL, 0);
  s->rtt = gw_metric_series(
      gw_metric_register(GW_METRIC_HISTOGRAM, "aivo_rtt_seconds",
                         "Round trip times of the gateway's pings to its clients.", NULL, rtt_buckets,
                         N(rtt_buckets)), NULL);
  for (const char *const *q = (const char *const[]){"excellent", "good", "fair", "poor", NULL}; *q; q++)
    gw_metric_series1(s->quality, *q);
  return s->connections && s->messages_received && s->errors && s->lua_errors ? 0 : -1;
}

void gw_stats_error(const char *type) { gw_series_add(gw_metric_series1(gw_stats.errors, type), 1); }

void gw_stats_slow_consumer(size_t dropped) {
  gw_series_add(gw_stats.slow_consumer_closes, 1);
  gw_series_add(gw_stats.sendq_dropped, (double)dropped);
  gw_stats_error("slow_consumer");
}

static void (*g_refresh)(void);
void gw_stats_set_refresh(void (*fn)(void)) { g_refresh = fn; }
void gw_stats_refresh(void) {
  if (g_refresh) g_refresh();
}

static gw_metric_t *g_budget_refused;
void gw_stats_budget_refusal(const char *budget) {
  if (!g_budget_refused)
    g_budget_refused = gw_metric_register(GW_METRIC_COUNTER, "aivo_inflight_refused_total",
                                          "Connections closed 1013 (try again later): a process-wide budget "
                                          "(server.max_inflight_bytes, server.max_sendq_total_bytes) was spent",
                                          "budget", NULL, 0);
  if (g_budget_refused) gw_series_add(gw_metric_series1(g_budget_refused, budget), 1);
}
