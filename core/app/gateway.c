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
#include "auth.h"
#include "auth_session.h"
#include "clock.h"
#include "close_codes.h"
#include "cluster.h"
#include "conn_quality.h"
#include "errors.h"
#include "hold.h"
#include "json.h"
#include "log.h"
#include "lua_api.h"
#include "node.h"
#include "pipeline.h"
#include "proto_native.h"
#include "ratelimit.h"
#include "resume.h"
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
  ev_timer node_flush;   /* zero timer: the node's subscription changes of this loop pass */
  gw_watch_t *watch;
  int finishing;
  /* the last reload, for GET /admin/policy */
  gw_errlist_t last_errors;
  const char *last_trigger;
  time_t last_reload_at, loaded_at;
  int last_ok;
} G;

/* registered with stats.h: the gauge of the running policy's Lua memory */
static void refresh_stats(void) {
  gw_series_set(gw_stats.lua_memory, G.policy ? (double)G.policy->vm->mem_used : 0);
  gw_cluster_refresh_metrics();
}

/* registered with quality.h: the policy's quality hook */
static void on_quality_change(gw_conn_t *c, const char *old_class) {
  if (G.policy) gw_policy_on_quality(G.policy, c, old_class);
}

/* Every place the running generation changes goes through here. */
static void set_policy(gw_policy_t *p) {
  G.policy = p;
  gw_policy_set_current(p);
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
  double t0 = gw_clock_now_ms();
  gw_policy_t *np = gw_policy_load(&po, &errs);
  gw_series_observe(gw_stats.reload_seconds, (gw_clock_now_ms() - t0) / 1000);
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
  set_policy(np);
  gw_policy_free(old);
  gw_cluster_settings_changed(&np->settings);
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

static void schedule_finish(void) {
  if (G.finishing || ev_is_active(&G.finish)) return;
  ev_timer_set(&G.finish, 0, 0);
  ev_timer_start(G.loop, &G.finish);
}

/* registered with the pipeline: the last connection of a drain has closed */
static void on_conn_closed(void) {
  if (gw_loop_draining() && gw_conn_count() == 0) schedule_finish();
}

/* ---- the node: publications through the broker (local until Redis is configured) ------- */

/* The node's delivery (node.h): a publication's local members, through their protocols. */
static size_t deliver_local(void *ud, const char *channel, const gw_publication_t *pub) {
  (void)ud;
  gw_event_t e = {pub->event, pub->event_len, pub->data, pub->data_len, NULL, NULL, 0};
  if (pub->has_position) {
    const gw_settings_t *s = &G.policy->settings;
    const gw_replay_rule_t *rule = gw_replay_match(s->replay, s->n_replay, channel, pub->event, pub->event_len);
    e.channel = channel;
    e.pos = &pub->position;
    e.ack = rule && rule->ack;
  }
  return gw_room_fanout(channel, &e, pub->except_conn);
}

/* Subscription changes are sent once per loop pass, however many joins and leaves it saw. */
static void on_node_flush(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)w, (void)revents;
  gw_node_flush();
}

static void node_wake(void *ud) {
  (void)ud;
  if (!ev_is_active(&G.node_flush)) {
    ev_timer_set(&G.node_flush, 0, 0);
    ev_timer_start(G.loop, &G.node_flush);
  }
}

/* The broker comes from the cluster (cluster.h): local, or Redis when configured. */
static int node_start(const gw_options_t *o, char *err, size_t errlen) {
  uint64_t id = 0;
  while (!id) gw_random_bytes(&id, sizeof id);
  int rc = gw_cluster_start(G.loop, &G.policy->settings, o->redis_url, id, err, errlen);
  if (rc) return rc;
  gw_node_config_t nc = {0};
  nc.broker = gw_cluster_broker();
  nc.history = gw_cluster_history();
  nc.delivery.deliver = deliver_local;
  nc.id = id;
  nc.presence = gw_cluster_redis(); /* alone, the rooms themselves answer presence */
  nc.wake = node_wake;
  ev_init(&G.node_flush, on_node_flush);
  if ((rc = gw_node_init(&nc))) {
    snprintf(err, errlen, "cannot start the node (%s)", gw_strerror(rc));
    gw_cluster_stop();
    return rc;
  }
  return 0;
}

static void node_stop(void) {
  ev_timer_stop(G.loop, &G.node_flush);
  gw_node_close();
  gw_cluster_stop();
}

/* Every second: drained rate-limit buckets and old stability records are dropped. */
static void on_housekeeping(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)w, (void)revents;
  double now = gw_clock_now_ms();
  gw_ratelimit_sweep(now, 10000);
  gw_quality_sweep(now, G.policy->settings.stability_window_s * 1000);
  gw_cluster_sweep();
  if (gw_hold_count()) /* holds of clients that said they would resume and did not */
    for (gw_conn_t *c = gw_conn_first(); c; c = c->hh.next)
      if (c->hold) gw_hold_release_stale(c, now - GW_HOLD_UNCLAIMED_MS, gw_resume_send_one);
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
  /* the broker's sockets and timers (Redis) would keep the loop running */
  node_stop();
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
  if (gw_loop_draining()) {
    gw_warn("second %s: stopping now", w->signum == SIGINT ? "SIGINT" : "SIGTERM");
    schedule_finish();
    return;
  }
  gw_loop_set_draining(1);
  double deadline = G.policy->settings.drain_timeout_s;
  gw_info("%s: draining %zu connections (deadline %.1f s)", w->signum == SIGINT ? "SIGINT" : "SIGTERM",
          gw_conn_count(), deadline);
  gw_server_stop_accepting(G.server);
  for (gw_conn_t *c = gw_conn_first(); c; c = c->hh.next) gw_conn_close(c, GW_CLOSE_GOING_AWAY, "server shutting down");
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
  set_policy(gw_policy_load(&po, &errs));
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
  gw_loop_set_main(G.loop);
  gw_stats_set_refresh(refresh_stats);
  gw_quality_set_observer(on_quality_change);
  gw_pipeline_set_closed_hook(on_conn_closed);
  char nerr[512];
  if (node_start(o, nerr, sizeof nerr)) {
    fprintf(stderr, "aivo-gw: %s\n", nerr);
    gw_policy_free(G.policy);
    gw_loop_free(G.loop);
    return 1;
  }
  char err[256];
  gw_server_opts_t so = {o->listen_host, o->port, o->reuse_port, o->admin_host, o->admin_port,
                         o->admin_required, o->tls_cert, o->tls_key, gw_admin_handle, gw_cluster_not_ready};
  static const gw_admin_ops_t admin_ops = {gw_gateway_reload, gw_gateway_policy_status, gw_cluster_status};
  gw_admin_set_ops(&admin_ops);
  gw_admin_set_token(o->admin_token);
  G.server = gw_server_new(G.loop, &so, err, sizeof err);
  if (!G.server) {
    fprintf(stderr, "aivo-gw: %s\n", err);
    node_stop();
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
  node_stop();
  gw_policy_free(G.policy);
  set_policy(NULL);
  gw_loop_free(G.loop);
  gw_metrics_free();
  gw_errlist_free(&G.last_errors);
  gw_info("stopped");
  return 0;
}
