/* The cluster: the local broker, or Redis (cluster.h, docs/scaling.md). */
#include "cluster.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker_local.h"
#include "broker_redis.h"
#include "clock.h"
#include "errors.h"
#include "history_mem.h"
#include "history_redis.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "ratelimit.h"
#include "ratelimit_redis.h"
#include "redis_config.h"
#include "redis_conn.h"
#include "replay.h"

static struct {
  gw_loop_t *loop;
  uint64_t node_id;
  gw_broker_local_t *local;
  gw_broker_redis_t *redis;
  gw_rl_redis_t *rl;
  const gw_broker_t *broker;
  gw_history_mem_t *hmem;     /* the history alone (memory) */
  gw_history_redis_t *hredis; /* or with Redis (Streams) */
  const gw_history_t *history;
  gw_redis_config_t cfg;
  gw_redis_settings_t started_with; /* redis.* at start, to warn when a reload changes them */
  char where[400];                  /* the address for logs: never the password */
  unsigned presence_ttl_ms;
  gw_history_settings_t history_cfg;
  struct { /* aivo_replay_* (both stores) */
    gw_series_t *stored, *store_failed, *replayed, *trimmed, *expired, *redelivered, *failed, *acked;
    gw_series_t *streams, *messages, *bytes;
  } r;
  struct {
    gw_series_t *up, *reconnects, *lost, *subscriptions, *pending;
    gw_series_t *ok, *error, *timeout, *link_lost, *refused;
  } m;
} C;

/* ---- configuration --------------------------------------------------------------------- */

/* redis.* from the policy's config (the lowest layer), then --redis and REDIS_* on top. */
static int resolve_config(const gw_settings_t *s, const char *cli_url, char *err, size_t errlen) {
  gw_redis_config_t *c = &C.cfg;
  gw_redis_config_defaults(c);
  const gw_redis_settings_t *r = &s->redis;
  char e[300];
  if (r->url[0] && gw_redis_config_parse_url(c, r->url, e, sizeof e)) {
    snprintf(err, errlen, "redis.url: %s", e);
    return GW_EINVAL;
  }
  if (!r->url[0] && r->host[0]) {
    snprintf(c->host, sizeof c->host, "%s", r->host);
    c->port = r->port;
    c->db = r->db;
    c->configured = 1;
  }
  if (r->prefix[0]) snprintf(c->prefix, sizeof c->prefix, "%s", r->prefix);
  c->required = r->required;
  c->connect_timeout_ms = r->connect_timeout_ms;
  c->command_timeout_ms = r->command_timeout_ms;
  if (gw_redis_config_resolve(c, cli_url, err, errlen)) return GW_EINVAL;
  if (c->configured && !r->prefix[0]) {
    snprintf(err, errlen, "redis.prefix must not be empty: it keeps deployments sharing one Redis apart");
    return GW_EINVAL;
  }
  gw_redis_config_describe(c, C.where, sizeof C.where);
  return 0;
}

/* ---- metrics (registered only with Redis: a gateway alone has no Redis to be down) ------ */

static gw_series_t *gauge(const char *name, const char *help) {
  return gw_metric_series(gw_metric_register(GW_METRIC_GAUGE, name, help, NULL, NULL, 0), NULL);
}
static gw_series_t *counter(const char *name, const char *help) {
  return gw_metric_series(gw_metric_register(GW_METRIC_COUNTER, name, help, NULL, NULL, 0), NULL);
}

static void register_metrics(void) {
  C.m.up = gauge("aivo_redis_up", "1 while both Redis connections (commands, pub/sub) are up.");
  C.m.reconnects = counter("aivo_redis_reconnects_total", "Redis connections re-established after a loss.");
  C.m.lost = counter("aivo_redis_publish_lost_total",
                     "Publications that could not reach the other gateways (Redis down or failing); "
                     "local members got them.");
  C.m.subscriptions = gauge("aivo_redis_subscriptions", "Channels this gateway is subscribed to (rooms with local members).");
  C.m.pending = gauge("aivo_redis_pending_commands", "Redis commands sent and not answered yet.");
  gw_metric_t *cmds = gw_metric_register(GW_METRIC_COUNTER, "aivo_redis_commands_total",
                                         "Redis commands by result (ok, error, timeout, lost, refused).", "result", NULL, 0);
  C.m.ok = gw_metric_series1(cmds, "ok");
  C.m.error = gw_metric_series1(cmds, "error");
  C.m.timeout = gw_metric_series1(cmds, "timeout");
  C.m.link_lost = gw_metric_series1(cmds, "lost");
  C.m.refused = gw_metric_series1(cmds, "refused");
}

static void register_replay_metrics(void) {
  C.r.stored = counter("aivo_replay_stored_total", "Messages kept for offline replay (a replay rule matched).");
  C.r.store_failed = counter("aivo_replay_store_failed_total",
                             "Messages a replay rule matched that the store refused (too large) or failed to keep "
                             "(Redis down); they were delivered live only.");
  C.r.replayed = counter("aivo_replay_replayed_total", "Kept messages read back for resuming clients and /admin/history.");
  C.r.trimmed = counter("aivo_replay_trimmed_total",
                        "Kept messages dropped by a stream's size or a store bound before their TTL.");
  C.r.expired = counter("aivo_replay_expired_total", "Kept messages dropped by their TTL (memory store).");
  C.r.redelivered = counter("aivo_replay_redelivered_total", "Messages needing an ack sent again to a connected client.");
  C.r.failed = counter("aivo_replay_failed_total",
                       "Messages needing an ack that a connected client did not acknowledge after every retry.");
  C.r.acked = counter("aivo_replay_acked_total", "Messages needing an ack that clients acknowledged.");
  C.r.streams = gauge("aivo_replay_streams", "Streams in the memory store.");
  C.r.messages = gauge("aivo_replay_messages", "Messages in the memory store.");
  C.r.bytes = gauge("aivo_replay_bytes", "Payload bytes in the memory store.");
}

static void refresh_replay_metrics(void) {
  gw_node_stats_t n;
  gw_replay_stats_t r;
  gw_cluster_history_counts_t h;
  gw_node_stats(&n);
  gw_replay_stats(&r);
  gw_cluster_history_counts(&h);
  gw_series_set(C.r.stored, (double)n.kept);
  gw_series_set(C.r.store_failed, (double)n.keep_failed);
  gw_series_set(C.r.replayed, (double)r.replayed);
  gw_series_set(C.r.trimmed, (double)h.trimmed);
  gw_series_set(C.r.expired, (double)h.expired);
  gw_series_set(C.r.redelivered, (double)r.redelivered);
  gw_series_set(C.r.failed, (double)r.failed);
  gw_series_set(C.r.acked, (double)r.acked);
  gw_series_set(C.r.streams, (double)h.streams);
  gw_series_set(C.r.messages, (double)h.messages);
  gw_series_set(C.r.bytes, (double)h.bytes);
}

void gw_cluster_refresh_metrics(void) {
  refresh_replay_metrics();
  if (!C.redis || !C.m.up) return;
  gw_broker_redis_stats_t b;
  gw_redis_conn_stats_t cmd, sub;
  gw_broker_redis_stats(C.redis, &b);
  gw_broker_redis_conn_stats(C.redis, &cmd, &sub);
  gw_series_set(C.m.up, b.up ? 1 : 0);
  gw_series_set(C.m.reconnects, (double)(cmd.reconnects + sub.reconnects));
  gw_series_set(C.m.lost, (double)b.publish_lost);
  gw_series_set(C.m.subscriptions, (double)b.subscriptions);
  gw_series_set(C.m.pending, (double)(cmd.pending + sub.pending));
  gw_series_set(C.m.ok, (double)(cmd.commands_ok + sub.commands_ok));
  gw_series_set(C.m.error, (double)(cmd.commands_error + sub.commands_error));
  gw_series_set(C.m.timeout, (double)(cmd.commands_timeout + sub.commands_timeout));
  gw_series_set(C.m.link_lost, (double)(cmd.commands_lost + sub.commands_lost));
  gw_series_set(C.m.refused, (double)(cmd.commands_refused + sub.commands_refused));
}

/* ---- start and stop -------------------------------------------------------------------- */

static void on_start_deadline(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  *(int *)w->data = 1;
}

/* Runs the loop until Redis is up, refuses the password, or the connect timeout passes. */
static int wait_first_connection(void) {
  int expired = 0;
  ev_timer t;
  ev_timer_init(&t, on_start_deadline, (C.cfg.connect_timeout_ms + 250) / 1000.0, 0);
  t.data = &expired;
  ev_timer_start(C.loop, &t);
  gw_broker_redis_stats_t st;
  for (;;) {
    gw_broker_redis_stats(C.redis, &st);
    if (st.up || expired || gw_broker_redis_last_error(C.redis) == GW_EAUTH) break;
    ev_run(C.loop, EVRUN_ONCE);
  }
  ev_timer_stop(C.loop, &t);
  if (st.up) return 0;
  return gw_broker_redis_last_error(C.redis) == GW_EAUTH ? GW_EAUTH : GW_EUNAVAIL;
}

static int start_redis(char *err, size_t errlen) {
  gw_broker_redis_config_t bc;
  memset(&bc, 0, sizeof bc);
  bc.redis = &C.cfg;
  bc.loop = C.loop;
  bc.node_id = C.node_id;
  bc.presence_ttl_ms = C.presence_ttl_ms;
  bc.presence_refresh_ms = C.presence_ttl_ms / 3; /* two refreshes may fail before expiry */
  int rc = gw_broker_redis_new(&bc, &C.redis);
  if (rc) {
    snprintf(err, errlen, "Redis at %s: cannot start the broker (%s)", C.where, gw_strerror(rc));
    return rc;
  }
  gw_rl_redis_config_t rc_cfg = {gw_broker_redis_command_conn(C.redis), C.cfg.prefix, 0};
  if ((rc = gw_rl_redis_new(&rc_cfg, &C.rl))) {
    snprintf(err, errlen, "Redis at %s: cannot start the global rate-limit store (%s)", C.where, gw_strerror(rc));
    return rc;
  }
  gw_ratelimit_set_global_store(gw_rl_redis_store(C.rl));
  gw_history_redis_config_t hc = {0};
  hc.conn = gw_broker_redis_command_conn(C.redis);
  hc.prefix = C.cfg.prefix;
  hc.max_stream_len = C.history_cfg.max_stream_len;
  hc.max_message_bytes = C.history_cfg.max_message_bytes;
  if ((rc = gw_history_redis_new(&hc, &C.hredis))) {
    snprintf(err, errlen, "Redis at %s: cannot start the replay store (%s)", C.where, gw_strerror(rc));
    return rc;
  }
  C.history = gw_history_redis_store(C.hredis);
  register_metrics();
  C.broker = gw_broker_redis_broker(C.redis);
  rc = wait_first_connection();
  if (rc == GW_EAUTH) {
    snprintf(err, errlen,
             "Redis at %s refused the credentials (check REDIS_PASSWORD or the password in the "
             "URL): not starting, rather than running alone without the other gateways",
             C.where);
    return rc;
  }
  if (rc)
    gw_warn("Redis at %s is not reachable yet: serving this gateway's connections, reconnecting in "
            "the background%s", C.where, C.cfg.required ? " (redis.required: /readyz answers 503 meanwhile)" : "");
  else
    gw_info("cluster: Redis at %s, node %016" PRIx64 ": rooms and users are shared with every gateway on it", C.where,
            C.node_id);
  return 0;
}

int gw_cluster_start(gw_loop_t *loop, const gw_settings_t *s, const char *cli_url, uint64_t node_id,
                     char *err, size_t errlen) {
  memset(&C, 0, sizeof C);
  C.loop = loop;
  C.node_id = node_id;
  C.started_with = s->redis;
  C.presence_ttl_ms = s->redis.presence_ttl_ms;
  C.history_cfg = s->history;
  register_replay_metrics();
  int rc = resolve_config(s, cli_url, err, errlen);
  if (rc) return rc;
  if (C.cfg.configured) {
    if ((rc = start_redis(err, errlen))) gw_cluster_stop();
    return rc;
  }
  if ((rc = gw_broker_local_new(&C.local))) {
    snprintf(err, errlen, "out of memory starting the local broker");
    return rc;
  }
  C.broker = gw_broker_local_broker(C.local);
  gw_history_mem_config_t mc;
  gw_history_mem_config_defaults(&mc);
  mc.max_streams = s->history.max_streams;
  mc.max_total_bytes = s->history.max_total_bytes;
  mc.max_stream_bytes = s->history.max_stream_bytes;
  mc.max_stream_len = s->history.max_stream_len;
  if ((rc = gw_history_mem_new(&mc, &C.hmem))) {
    snprintf(err, errlen, "cannot start the replay store in memory (%s)", gw_strerror(rc));
    gw_cluster_stop();
    return rc;
  }
  C.history = gw_history_mem_store(C.hmem);
  gw_info("running alone: no Redis configured (set REDIS_URL, REDIS_HOST or --redis to run several gateways as one)");
  return 0;
}

void gw_cluster_stop(void) {
  gw_ratelimit_set_global_store(NULL);
  C.history = NULL;
  gw_history_mem_free(C.hmem);
  C.hmem = NULL;
  gw_history_redis_free(C.hredis); /* before the broker that owns its connection */
  C.hredis = NULL;
  gw_rl_redis_free(C.rl);
  C.rl = NULL;
  if (C.redis) gw_broker_redis_free(C.redis);
  C.redis = NULL;
  gw_broker_local_free(C.local);
  C.local = NULL;
  C.broker = NULL;
}

const gw_broker_t *gw_cluster_broker(void) { return C.broker; }
const gw_history_t *gw_cluster_history(void) { return C.history; }

void gw_cluster_sweep(void) {
  if (C.hmem) gw_history_mem_sweep(C.hmem, 1000);
}

void gw_cluster_history_counts(gw_cluster_history_counts_t *out) {
  memset(out, 0, sizeof *out);
  if (C.hmem) {
    gw_history_mem_stats_t m;
    gw_history_mem_stats(C.hmem, &m);
    out->trimmed = m.trimmed + m.evicted_items;
    out->expired = m.expired;
    out->streams = m.streams;
    out->messages = m.items;
    out->bytes = m.bytes;
  } else if (C.hredis) {
    gw_history_redis_stats_t r;
    gw_history_redis_stats(C.hredis, &r);
    out->trimmed = r.trimmed;
    out->errors = r.errors + r.malformed;
  }
}
int gw_cluster_redis(void) { return C.redis != NULL; }

static int same_redis(const gw_redis_settings_t *a, const gw_redis_settings_t *b) {
  return !strcmp(a->url, b->url) && !strcmp(a->host, b->host) && a->port == b->port && a->db == b->db &&
         !strcmp(a->prefix, b->prefix) && a->required == b->required && a->connect_timeout_ms == b->connect_timeout_ms &&
         a->command_timeout_ms == b->command_timeout_ms && a->presence_ttl_ms == b->presence_ttl_ms;
}

void gw_cluster_settings_changed(const gw_settings_t *s) {
  if (!same_redis(&s->redis, &C.started_with))
    gw_warn("redis.* changed in the policy: a running gateway keeps the Redis it started with (%s); restart it to "
            "move", C.redis ? C.where : "none, running alone");
  C.started_with = s->redis;
  C.presence_ttl_ms = s->redis.presence_ttl_ms; /* once per change */
}

/* ---- readiness and status ---------------------------------------------------------------- */

static int redis_up(void) {
  gw_broker_redis_stats_t b;
  gw_broker_redis_stats(C.redis, &b);
  return b.up;
}

int gw_cluster_not_ready(char *note, size_t cap) {
  note[0] = 0;
  if (!C.redis || redis_up()) return 0;
  if (C.cfg.required) {
    snprintf(note, cap, "redis down (redis.required)");
    return 1;
  }
  snprintf(note, cap, "redis down: serving local connections only");
  return 0;
}

void gw_cluster_status(gw_strbuf_t *out) {
  char node[20];
  snprintf(node, sizeof node, "%016" PRIx64, C.node_id);
  gw_strbuf_appendf(out, "{\"node\":\"%s\",\"broker\":\"%s\"", node, C.broker ? C.broker->name : "none");
  if (!C.redis) {
    gw_strbuf_appendf(out, ",\"redis\":null}");
    return;
  }
  gw_broker_redis_stats_t b;
  gw_redis_conn_stats_t cmd, sub;
  gw_rl_redis_stats_t rl;
  gw_broker_redis_stats(C.redis, &b);
  gw_broker_redis_conn_stats(C.redis, &cmd, &sub);
  gw_rl_redis_stats(C.rl, &rl);
  char where[GW_JSON_ESCAPED_MAX(400)], prefix[GW_JSON_ESCAPED_MAX(64)];
  gw_json_escape(C.where, strlen(C.where), where, sizeof where);
  gw_json_escape(C.cfg.prefix, strlen(C.cfg.prefix), prefix, sizeof prefix);
  int err = gw_broker_redis_last_error(C.redis);
  gw_strbuf_appendf(out,
                    ",\"redis\":{\"address\":%s,\"prefix\":%s,\"required\":%s,\"up\":%s,\"last_error\":%s%s%s,"
                    "\"subscriptions\":%zu,\"published\":%" PRIu64 ",\"publish_lost\":%" PRIu64
                    ",\"received\":%" PRIu64 ",\"dropped_malformed\":%" PRIu64 ",\"dropped_oversize\":%" PRIu64
                    ",\"presence_entries\":%zu",
                    where, prefix, C.cfg.required ? "true" : "false", b.up ? "true" : "false", err ? "\"" : "",
                    err ? gw_strerror(err) : "null", err ? "\"" : "", b.subscriptions, b.published, b.publish_lost,
                    b.received, b.dropped_malformed, b.dropped_oversize, b.presence_entries);
  const gw_redis_conn_stats_t *cs[2] = {&cmd, &sub};
  const char *names[2] = {"commands", "pubsub"};
  for (int i = 0; i < 2; i++)
    gw_strbuf_appendf(out,
                      ",\"%s\":{\"up\":%s,\"connects\":%" PRIu64 ",\"reconnects\":%" PRIu64 ",\"pending\":%zu,"
                      "\"ok\":%" PRIu64 ",\"error\":%" PRIu64 ",\"timeout\":%" PRIu64 ",\"lost\":%" PRIu64 "}",
                      names[i], cs[i]->up ? "true" : "false", cs[i]->connects, cs[i]->reconnects, cs[i]->pending,
                      cs[i]->commands_ok, cs[i]->commands_error, cs[i]->commands_timeout, cs[i]->commands_lost);
  gw_strbuf_appendf(out,
                    ",\"global_ratelimit\":{\"checks\":%" PRIu64 ",\"allowed\":%" PRIu64 ",\"refused\":%" PRIu64
                    ",\"fallback_checks\":%" PRIu64 ",\"outages\":%" PRIu64 ",\"over_admitted\":%" PRIu64 "}}}",
                    rl.checks, rl.allowed, rl.refused, rl.fallback_checks, rl.outages, rl.over_admitted);
}
