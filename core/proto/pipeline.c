/* The message path every protocol shares (pipeline.h). */
#include "pipeline.h"

#include <stdio.h>
#include <string.h>

#include "ack_track.h"
#include "auth.h"
#include "auth_session.h"
#include "clock.h"
#include "close_codes.h"
#include "conn_quality.h"
#include "errors.h"
#include "hold.h"
#include "log.h"
#include "lua_api.h"
#include "policy.h"
#include "ratelimit.h"
#include "room.h"
#include "stats.h"

static void (*g_closed_hook)(void);

void gw_pipeline_set_closed_hook(void (*fn)(void)) { g_closed_hook = fn; }

int gw_pipeline_open(gw_conn_t *c, const gw_request_t *req, char *reason, size_t reasonlen) {
  gw_policy_t *p = gw_policy_current();
  gw_verdict_t v;
  if (c->proto != GW_PROTO_SOCKETIO) { /* Socket.IO: its Engine.IO session is counted (engineio.c) */
    gw_ratelimit_conn_opened(c->remote);
    c->ip_counted = 1;
  }
  gw_quality_init(&c->quality, gw_clock_now_ms());
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
      /* connections.max_per_user: refused (GW_CLOSE_RATE_LIMITED) */
    } else if (n < 0 || (size_t)n >= sizeof room || gw_conn_set_user(c, user) ||
        gw_room_join(c, room, SIZE_MAX)) {
      code = GW_CLOSE_BAD_REQUEST;
      snprintf(reason, reasonlen, "bad identity");
    } else {
      c->ready = 1;
      gw_auth_session_start(c, claims.exp);
      gw_series_add(gw_stats.connections, 1);
      gw_series_add(gw_stats.connections_opened, 1);
      gw_series_add(gw_metric_series1(gw_stats.connections_by_protocol, gw_proto_name(c->proto)), 1);
      gw_log(GW_LOG_DEBUG, c->id, "connected from %s as %s (%s)", c->remote, c->user,
             gw_proto_name(c->proto));
      if (c->proto == GW_PROTO_WS) gw_ack_track_connected(c, room); /* what it did not ack */
    }
  } else if (v.status == GW_VERDICT_REJECT && v.auth) { /* the auth hook: 401 / CONNECT_ERROR */
    code = GW_CLOSE_UNAUTHORIZED;
    snprintf(reason, reasonlen, "%s", v.code);
    gw_series_add(gw_metric_series1(gw_stats.auth_refusals, v.code), 1);
    gw_log(GW_LOG_INFO, c->id, "unauthorized: %s (%s, policy auth hook)", v.code, v.message);
  } else if (v.status == GW_VERDICT_REJECT) {
    code = GW_CLOSE_FORBIDDEN;
    snprintf(reason, reasonlen, "%s: %s", v.code, v.message);
    gw_log(GW_LOG_INFO, c->id, "connection refused by the policy: %s", reason);
  } else {
    code = GW_CLOSE_INTERNAL; /* the connect hook failed: fail closed */
    snprintf(reason, reasonlen, "internal error");
  }
  gw_policy_verdict_end(p, &v);
  gw_auth_claims_free(&claims);
  return code;
}

void gw_pipeline_message(gw_conn_t *c, const unsigned char *data, size_t len, int binary, const void *decoded) {
  if (!c->ready) return;
  double t0 = gw_clock_now_ms();
  gw_series_add(gw_stats.messages_received, 1);
  gw_series_add(gw_stats.bytes_received, (double)len);
  if (c->ops) c->ops->on_message(c, data, len, binary, decoded);
  gw_series_observe(gw_stats.latency_ms, gw_clock_now_ms() - t0);
}

void gw_pipeline_closed(gw_conn_t *c, const char *why) {
  gw_policy_t *p = gw_policy_current();
  if (p) {
    if (c->ready) gw_policy_on_disconnect(p, c, why);
    else gw_lua_forget_conn(p->vm->L, c->id);
  }
  gw_log(GW_LOG_DEBUG, c->id, "disconnected (%s)", why);
  if (c->ready) {
    gw_series_add(gw_stats.connections, -1);
    gw_series_add(gw_metric_series1(gw_stats.connections_by_protocol, gw_proto_name(c->proto)), -1);
  }
  gw_auth_session_stop(c);
  gw_ack_track_forget(c);
  gw_quality_conn_closed(c, gw_clock_now_ms());
  if (c->ip_counted) gw_ratelimit_conn_closed(c->remote);
  gw_room_leave_all(c);
  gw_hold_free(c); /* leaving its rooms ended every hold; this frees what is left */
  gw_conn_free(c);
  if (g_closed_hook) g_closed_hook();
}

void gw_pipeline_reply(gw_conn_t *c, gw_policy_t *p, const gw_verdict_t *v, int has_id, uint64_t id) {
  if (v->status == GW_VERDICT_OK) {
    if (!has_id) return;
    size_t jlen = 0;
    const char *json = v->data_idx ? gw_lua_json_encode(p->vm, v->data_idx, &jlen) : NULL;
    if (v->data_idx && !json) {
      gw_log(GW_LOG_ERROR, c->id, "cannot encode the ack data as JSON: %s", lua_tostring(p->vm->L, -1));
      c->ops->refuse(c, 1, id, "internal_error", "internal error");
    } else {
      c->ops->ack(c, id, json, jlen);
    }
  } else if (v->retry_after_ms >= 0) { /* the old service's shapes (conn.h rate_limited) */
    gw_conn_rate_limited(c, has_id, id, v->retry_after_ms, v->message);
  } else {
    c->ops->refuse(c, has_id, id, v->code, v->message);
  }
}
