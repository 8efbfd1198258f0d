#include "gateway.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "admin.h"
#include "errors.h"
#include "json.h"
#include "auth.h"
#include "auth_session.h"
#include "log.h"
#include "lua_api.h"
#include "proto_native.h"
#include "ratelimit.h"
#include "room.h"
#include "server.h"
#include "socketio.h"
#include "stats.h"
#include "watch.h"

#define RELOAD_DEBOUNCE_S 0.3 /* editors write several times per save */

static struct {
  gw_loop_t *loop;
  gw_server_t *server;
  gw_policy_t *policy;
  const gw_options_t *opts;
  ev_signal sigint, sigterm, sighup;
  ev_timer drain_deadline, finish;
  ev_timer housekeeping; /* expires idle rate-limit buckets and stability records */
  gw_watch_t *watch;
  int draining, finishing;
  uint64_t slow_consumers;
  /* the last reload, for GET /admin/policy */
  gw_errlist_t last_errors;
  const char *last_trigger;
  time_t last_reload_at, loaded_at;
  int last_ok;
} G;

const gw_settings_t *gw_settings(void) { return &G.policy->settings; }
gw_policy_t *gw_gateway_policy(void) { return G.policy; }
gw_loop_t *gw_gateway_loop(void) { return G.loop; }
int gw_gateway_draining(void) { return G.draining; }

void gw_gateway_refresh_stats(void) {
  gw_series_set(gw_stats.lua_memory, G.policy ? (double)G.policy->vm->mem_used : 0);
}
void gw_gateway_count_slow_consumer(size_t dropped) {
  G.slow_consumers++;
  gw_series_add(gw_stats.slow_consumer_closes, 1);
  gw_series_add(gw_stats.sendq_dropped, (double)dropped);
  gw_stats_error("slow_consumer");
}

double gw_gateway_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void gw_gateway_random(void *buf, size_t len) {
  unsigned char *p = buf;
  while (len) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      for (size_t i = 0; i < len; i++) p[i] = (unsigned char)rand(); /* never reached on Linux >= 3.17 */
      return;
    }
    p += n;
    len -= (size_t)n;
  }
}

/* ---- policy generations -------------------------------------------------------------- */

static gw_policy_opts_t policy_opts(void) {
  gw_policy_opts_t po = {G.opts->policy_path, G.opts->lua_dir, G.opts->plugin_dirs,
                         G.opts->overrides, G.opts->n_overrides};
  return po;
}

/* Points the edit watch at the running generation's folders: the policy's, the plugin
 * search path, the Lua runtime and every folder a plugin or module was loaded from, each
 * with its subfolders (docs/policy-api.md, "What is watched"). */
static void rearm_watch(void) {
  if (!G.watch) return;
  gw_lua_vm_t *vm = G.policy->vm;
  const char *const *loaded = gw_lua_vm_loaded_dirs(vm);
  size_t n = 2;
  for (char **d = vm->plugin_dirs; d && *d; d++) n++;
  for (const char *const *d = loaded; *d; d++) n++;
  const char **dirs = calloc(n + 1, sizeof *dirs);
  if (!dirs) return; /* out of memory: the previous folders stay watched */
  size_t i = 0;
  if (vm->policy_dir) dirs[i++] = vm->policy_dir;
  for (char **d = vm->plugin_dirs; d && *d; d++) dirs[i++] = *d;
  if (vm->lua_dir) dirs[i++] = vm->lua_dir;
  for (const char *const *d = loaded; *d; d++) dirs[i++] = *d;
  size_t watched = gw_watch_set_dirs(G.watch, dirs);
  gw_log(GW_LOG_DEBUG, 0, "watching %zu folders for policy edits", watched);
  free(dirs);
}

/* Builds and validates a new generation beside the running one, then swaps; on any failure
 * the running generation keeps serving. Called only between events, never from a hook. */
int gw_gateway_reload(const char *trigger) {
  gw_errlist_t errs = {0};
  gw_policy_opts_t po = policy_opts();
  /* triggers coalesce: file changes seen before this point are read by this reload */
  gw_watch_absorb(G.watch);
  double t0 = gw_gateway_now_ms();
  gw_policy_t *np = gw_policy_load(&po, &errs);
  gw_series_observe(gw_stats.reload_seconds, (gw_gateway_now_ms() - t0) / 1000);
  gw_series_add(gw_metric_series1(gw_stats.reloads, np ? "ok" : "error"), 1);
  gw_errlist_free(&G.last_errors);
  G.last_trigger = trigger;
  G.last_reload_at = time(NULL);
  G.last_ok = np != NULL;
  if (!np) {
    gw_error("policy reload (%s) failed; generation %u keeps serving:", trigger, G.policy->generation);
    for (size_t i = 0; i < errs.n; i++) gw_error("  %s", errs.items[i]);
    G.last_errors = errs; /* kept for GET /admin/policy */
    return -1;
  }
  G.loaded_at = G.last_reload_at;
  gw_policy_t *old = G.policy;
  G.policy = np;
  gw_policy_free(old);
  gw_series_set(gw_stats.policy_generation, np->generation);
  rearm_watch();
  gw_info("policy reloaded (%s): generation %u, plugins: %s", trigger, np->generation, np->plugins);
  return 0;
}

static void add_json_string(gw_strbuf_t *b, const char *s) {
  size_t n = strlen(s);
  if (gw_strbuf_reserve(b, GW_JSON_ESCAPED_MAX(n))) return;
  b->len += gw_json_escape(s, n, b->p + b->len, b->cap - b->len);
}

static void add_raw(gw_strbuf_t *b, const char *s) { gw_strbuf_appendf(b, "%s", s); }

void gw_gateway_policy_status(gw_strbuf_t *b) {
  char num[160];
  add_raw(b, "{\"path\":");
  add_json_string(b, G.opts->policy_path);
  snprintf(num, sizeof num, ",\"generation\":%u,\"loaded_at\":%lld,\"plugins\":", G.policy->generation,
           (long long)G.loaded_at);
  add_raw(b, num);
  add_raw(b, G.policy->plugins_json ? G.policy->plugins_json : "[]");
  snprintf(num, sizeof num, ",\"lua_memory_bytes\":%zu,\"last_reload\":", G.policy->vm->mem_used);
  add_raw(b, num);
  if (!G.last_trigger) {
    add_raw(b, "null}");
    return;
  }
  snprintf(num, sizeof num, "{\"result\":\"%s\",\"at\":%lld,\"trigger\":", G.last_ok ? "ok" : "error",
           (long long)G.last_reload_at);
  add_raw(b, num);
  add_json_string(b, G.last_trigger);
  add_raw(b, ",\"errors\":[");
  for (size_t i = 0; i < G.last_errors.n; i++) {
    if (i) add_raw(b, ",");
    add_json_string(b, G.last_errors.items[i]);
  }
  add_raw(b, "]}}");
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)loop, (void)w, (void)revents;
  gw_server_reload_tls(G.server); /* certificate renewals: new handshakes get the new one */
  gw_gateway_reload("SIGHUP");
}

static void on_policy_edited(void *ud) {
  (void)ud;
  gw_gateway_reload("file change");
}

/* ---- connections --------------------------------------------------------------------- */

int gw_gateway_conn_open(gw_conn_t *c, const gw_request_t *req, char *reason, size_t reasonlen) {
  gw_policy_t *p = G.policy;
  gw_verdict_t v;
  if (c->proto != GW_PROTO_SOCKETIO) { /* Socket.IO: its Engine.IO session is counted (engineio.c) */
    gw_ratelimit_conn_opened(c->remote);
    c->ip_counted = 1;
  }
  gw_quality_init(&c->quality, gw_gateway_now_ms());
  /* the token is verified in C before any Lua runs (auth.c); its claims go to the hooks */
  gw_auth_claims_t claims;
  int acode = gw_auth_session_check(c, req, &claims, reason, reasonlen);
  if (acode) return acode;
  gw_request_t authed = *req;
  authed.claims_json = claims.json;
  gw_policy_on_connect(p, c, &authed, &v);
  int code = 0;
  if (v.status == GW_VERDICT_OK) {
    const char *user = v.data_idx ? lua_tostring(p->vm->L, v.data_idx) : NULL;
    char anon[40];
    if (!user || !*user) {
      snprintf(anon, sizeof anon, "anon-%llu", (unsigned long long)c->id);
      user = anon;
    }
    char room[GW_ROOM_NAME_MAX + 1];
    int n = snprintf(room, sizeof room, "user:%s", user);
    if (n > 0 && (size_t)n < sizeof room && (code = gw_ratelimit_admit_user(c, room, reason, reasonlen))) {
      /* connections.max_per_user: refused (4429) */
    } else if (n < 0 || (size_t)n >= sizeof room || gw_conn_set_user(c, user) ||
        gw_room_join(c, room, SIZE_MAX)) {
      code = 4400;
      snprintf(reason, reasonlen, "bad identity");
    } else {
      c->ready = 1;
      gw_auth_session_start(c, claims.exp);
      gw_series_add(gw_stats.connections, 1);
      gw_series_add(gw_stats.connections_opened, 1);
      gw_series_add(gw_metric_series1(gw_stats.connections_by_protocol, gw_proto_name(c->proto)), 1);
      gw_log(GW_LOG_DEBUG, c->id, "connected from %s as %s (%s)", c->remote, c->user,
             gw_proto_name(c->proto));
    }
  } else if (v.status == GW_VERDICT_REJECT && v.auth) { /* the auth hook: 401 / CONNECT_ERROR */
    code = GW_CLOSE_UNAUTHORIZED;
    snprintf(reason, reasonlen, "%s", v.code);
    gw_series_add(gw_metric_series1(gw_stats.auth_refusals, v.code), 1);
    gw_log(GW_LOG_INFO, c->id, "unauthorized: %s (%s, policy auth hook)", v.code, v.message);
  } else if (v.status == GW_VERDICT_REJECT) {
    code = 4403;
    snprintf(reason, reasonlen, "%s: %s", v.code, v.message);
    gw_log(GW_LOG_INFO, c->id, "connection refused by the policy: %s", reason);
  } else {
    code = 1011; /* the connect hook failed: fail closed */
    snprintf(reason, reasonlen, "internal error");
  }
  gw_policy_verdict_end(p, &v);
  gw_auth_claims_free(&claims);
  return code;
}

void gw_gateway_conn_message(gw_conn_t *c, const unsigned char *data, size_t len, int binary) {
  if (!c->ready) return;
  double t0 = gw_gateway_now_ms();
  gw_series_add(gw_stats.messages_received, 1);
  gw_series_add(gw_stats.bytes_received, (double)len);
  switch (c->proto) {
    case GW_PROTO_WS: gw_native_on_message(c, data, len, binary); break;
    case GW_PROTO_SOCKETIO: gw_sio_on_message(c, data, len, binary); break;
    default: break;
  }
  gw_series_observe(gw_stats.latency_ms, gw_gateway_now_ms() - t0);
}

static void schedule_finish(void) {
  if (G.finishing || ev_is_active(&G.finish)) return;
  ev_timer_set(&G.finish, 0, 0);
  ev_timer_start(G.loop, &G.finish);
}

void gw_gateway_conn_closed(gw_conn_t *c, const char *why) {
  if (G.policy) {
    if (c->ready) gw_policy_on_disconnect(G.policy, c, why);
    else gw_lua_forget_conn(G.policy->vm->L, c->id);
  }
  gw_log(GW_LOG_DEBUG, c->id, "disconnected (%s)", why);
  if (c->ready) {
    gw_series_add(gw_stats.connections, -1);
    gw_series_add(gw_metric_series1(gw_stats.connections_by_protocol, gw_proto_name(c->proto)), -1);
  }
  gw_auth_session_stop(c);
  gw_quality_conn_closed(c, gw_gateway_now_ms());
  if (c->ip_counted) gw_ratelimit_conn_closed(c->remote);
  gw_room_leave_all(c);
  gw_conn_free(c);
  if (G.draining && gw_conn_count() == 0) schedule_finish();
}

/* ---- outbound ------------------------------------------------------------------------ */

int gw_gateway_send(gw_conn_t *c, gw_msgbuf_t *b) { return gw_server_send(c, b); }

static gw_msgbuf_t *encode_event(gw_proto_t proto, const char *ev, size_t evlen, const char *json,
                                 size_t jlen) {
  switch (proto) {
    case GW_PROTO_WS: return gw_native_event(ev, evlen, json, jlen);
    default: return NULL;
  }
}

int gw_gateway_emit(gw_conn_t *c, const char *ev, size_t evlen, const char *json, size_t jlen) {
  if (c->proto == GW_PROTO_SOCKETIO) return gw_sio_emit(c, ev, evlen, json, jlen); /* per namespace */
  gw_msgbuf_t *b = encode_event(c->proto, ev, evlen, json, jlen);
  if (!b) return GW_ENOMEM;
  int rc = gw_server_send(c, b);
  gw_msgbuf_unref(b);
  return rc;
}

int gw_gateway_send_binary(gw_conn_t *c, const void *data, size_t len) {
  if (c->proto == GW_PROTO_SOCKETIO) return gw_sio_send_binary(c, data, len); /* event "binary" */
  gw_msgbuf_t *b = gw_msgbuf_from(data, len, 1);
  if (!b) return GW_ENOMEM;
  int rc = gw_server_send(c, b);
  gw_msgbuf_unref(b);
  return rc;
}

size_t gw_gateway_publish(const char *room, const char *ev, size_t evlen, const char *json,
                          size_t jlen, uint64_t except_id) {
  gw_room_t *r = gw_room_find(room);
  if (!r) return 0;
  /* encoded once per protocol, shared by every recipient */
  gw_msgbuf_t *bufs[GW_PROTO_COUNT] = {0};
  gw_sio_cache_t sio = {0}; /* Socket.IO: once per namespace present */
  size_t sent = 0;
  for (size_t i = 0; i < r->n; i++) {
    gw_conn_t *c = r->members[i].conn;
    if (c->id == except_id || c->close_code) continue;
    if (c->proto != GW_PROTO_WS) {
      if (c->proto == GW_PROTO_SOCKETIO && gw_sio_publish(&sio, c, ev, evlen, json, jlen) == 0) sent++;
      continue;
    }
    if (!bufs[c->proto] && !(bufs[c->proto] = encode_event(c->proto, ev, evlen, json, jlen)))
      continue;
    if (gw_server_send(c, bufs[c->proto]) == 0) sent++;
  }
  for (int p = 0; p < GW_PROTO_COUNT; p++) gw_msgbuf_unref(bufs[p]);
  gw_sio_cache_free(&sio);
  return sent;
}

/* The one place a rate-limit refusal is encoded, for every protocol: the shapes come from
 * gw_ratelimit_refusal_json(), so a client sees the same fields whichever way it connects. */
void gw_gateway_rate_limited(gw_conn_t *c, int has_id, uint64_t id, double retry_after_ms,
                             const char *message) {
  gw_series_add(gw_stats.rate_limited, 1);
  char json[512];
  size_t len;
  gw_msgbuf_t *b = NULL;
  switch (c->proto) {
    case GW_PROTO_WS: /* an ack error {code, message, retryAfterMs}, or the same as an error event */
      len = gw_ratelimit_refusal_json(GW_RL_SHAPE_ERROR, retry_after_ms, message, json, sizeof json);
      b = has_id ? gw_native_ack_error_json(id, json, len) : gw_native_event("error", 5, json, len);
      break;
    case GW_PROTO_SOCKETIO: {
      /* an ack gets GW_RL_SHAPE_ACK ({rateLimited: true, retryAfterMs, ...}, the old
       * service's shape) as its argument; no ack: the `error` event with GW_RL_SHAPE_ERROR */
      char ejson[512];
      len = gw_ratelimit_refusal_json(GW_RL_SHAPE_ACK, retry_after_ms, message, json, sizeof json);
      size_t elen = gw_ratelimit_refusal_json(GW_RL_SHAPE_ERROR, retry_after_ms, message, ejson, sizeof ejson);
      gw_sio_rate_limited(c, has_id, id, json, len, ejson, elen);
      break;
    }
    default:
      break;
  }
  if (b) {
    gw_server_send(c, b);
    gw_msgbuf_unref(b);
  }
}

void gw_gateway_close(gw_conn_t *c, int code, const char *reason) { gw_server_close(c, code, reason); }

/* Every second: drained rate-limit buckets and old stability records are dropped. */
static void on_housekeeping(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)w, (void)revents;
  double now = gw_gateway_now_ms();
  gw_ratelimit_sweep(now, 10000);
  gw_quality_sweep(now, G.policy->settings.stability_window_s * 1000);
}

/* ---- drain and shutdown -------------------------------------------------------------- */

static void on_finish(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)w, (void)revents;
  G.finishing = 1;
  ev_signal_stop(loop, &G.sigint);
  ev_signal_stop(loop, &G.sigterm);
  ev_signal_stop(loop, &G.sighup);
  ev_timer_stop(loop, &G.drain_deadline);
  gw_watch_free(G.watch);
  G.watch = NULL;
  /* closes whatever is still open; the loop then runs until lws's handles are closed */
  gw_server_destroy_begin(G.server);
}

static void on_drain_deadline(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)w, (void)revents;
  gw_warn("drain deadline passed with %zu connections still open: closing them", gw_conn_count());
  schedule_finish();
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)revents;
  if (G.draining) {
    gw_warn("second %s: stopping now", w->signum == SIGINT ? "SIGINT" : "SIGTERM");
    schedule_finish();
    return;
  }
  G.draining = 1;
  double deadline = G.policy->settings.drain_timeout_s;
  gw_info("%s: draining %zu connections (deadline %.1f s)", w->signum == SIGINT ? "SIGINT" : "SIGTERM",
          gw_conn_count(), deadline);
  gw_server_stop_accepting(G.server);
  for (gw_conn_t *c = gw_conn_first(); c; c = c->hh.next) gw_server_close(c, 1001, "server shutting down");
  ev_timer_set(&G.drain_deadline, deadline, 0);
  ev_timer_start(loop, &G.drain_deadline);
  if (gw_conn_count() == 0) schedule_finish();
}

int gw_gateway_run(const gw_options_t *o) {
  memset(&G, 0, sizeof G);
  G.opts = o;
  if (gw_stats_init()) {
    fprintf(stderr, "aivo-gw: out of memory registering metrics\n");
    return 1;
  }
  gw_errlist_t errs = {0};
  gw_policy_opts_t po = policy_opts();
  G.policy = gw_policy_load(&po, &errs);
  if (!G.policy) {
    for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "aivo-gw: %s\n", errs.items[i]);
    gw_errlist_free(&errs);
    gw_metrics_free();
    return 1;
  }
  gw_series_set(gw_stats.policy_generation, G.policy->generation);
  G.loaded_at = time(NULL);
  G.loop = gw_loop_new();
  if (!G.loop) {
    fprintf(stderr, "aivo-gw: cannot create the event loop (epoll)\n");
    gw_policy_free(G.policy);
    return 1;
  }
  char err[256];
  gw_server_opts_t so = {o->listen_host, o->port, o->reuse_port, o->admin_host, o->admin_port,
                         o->admin_required, o->tls_cert, o->tls_key};
  gw_admin_set_token(o->admin_token);
  G.server = gw_server_new(G.loop, &so, err, sizeof err);
  if (!G.server) {
    fprintf(stderr, "aivo-gw: %s\n", err);
    gw_policy_free(G.policy);
    gw_loop_free(G.loop);
    return 1;
  }
  /* installed after the lws context exists: the gateway, not lws, owns these signals */
  ev_signal_init(&G.sigint, on_stop_signal, SIGINT);
  ev_signal_init(&G.sigterm, on_stop_signal, SIGTERM);
  ev_signal_init(&G.sighup, on_sighup, SIGHUP);
  ev_signal_start(G.loop, &G.sigint);
  ev_signal_start(G.loop, &G.sigterm);
  ev_signal_start(G.loop, &G.sighup);
  ev_init(&G.drain_deadline, on_drain_deadline);
  ev_init(&G.finish, on_finish);
  ev_timer_init(&G.housekeeping, on_housekeeping, 1, 1);
  ev_timer_start(G.loop, &G.housekeeping);
  ev_unref(G.loop); /* housekeeping alone must not keep the loop running at shutdown */
  G.watch = gw_watch_new(G.loop, RELOAD_DEBOUNCE_S, on_policy_edited, NULL);
  rearm_watch();

  gw_info("aivo-gw listening on %s:%d (policy %s, generation %u, plugins: %s)",
          o->listen_host ? o->listen_host : "0.0.0.0", gw_server_port(G.server), o->policy_path,
          G.policy->generation, G.policy->plugins);
  if (gw_server_admin_port(G.server) > 0)
    gw_info("admin API on %s:%d%s", o->admin_host ? o->admin_host : "127.0.0.1", gw_server_admin_port(G.server),
            o->admin_token && *o->admin_token ? " (bearer token required)" : "");

  gw_loop_run(G.loop);

  ev_ref(G.loop);
  ev_timer_stop(G.loop, &G.housekeeping);
  gw_ratelimit_clear();
  gw_quality_clear();
  gw_server_destroy_finish(G.server);
  G.server = NULL;
  gw_policy_free(G.policy);
  G.policy = NULL;
  gw_loop_free(G.loop);
  gw_metrics_free();
  gw_errlist_free(&G.last_errors);
  gw_info("stopped");
  return 0;
}
