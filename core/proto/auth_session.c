#include "auth_session.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <luajit-2.1/lua.h>

#include "auth.h"
#include "log.h"
#include "policy.h"
#include "stats.h"

double gw_auth_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double grace_s(void) {
  gw_policy_t *p = gw_policy_current();
  return p && p->auth ? gw_auth_settings(p->auth)->refresh_grace_s : 30;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)revents;
  gw_conn_t *c = (gw_conn_t *)((char *)w - offsetof(gw_conn_t, auth_timer));
  if (c->close_code) return;
  if (!c->auth_asked) {
    double grace = grace_s();
    c->auth_asked = 1;
    char data[96];
    int n = snprintf(data, sizeof data, "{\"exp\":%.15g,\"grace\":%.15g}", c->auth_exp, grace);
    gw_log(GW_LOG_INFO, c->id, "token expired: asking for a new one (auth:refresh, %g s to answer)", grace);
    gw_conn_emit(c, "auth:refresh", 12, data, (size_t)n);
    ev_timer_set(w, grace, 0);
    ev_timer_start(loop, w);
    return;
  }
  gw_log(GW_LOG_INFO, c->id, "closing %d: token expired and no new token arrived", GW_CLOSE_UNAUTHORIZED);
  gw_series_add(gw_metric_series1(gw_stats.auth_refusals, "refresh_timeout"), 1);
  gw_conn_close(c, GW_CLOSE_UNAUTHORIZED, "token expired");
}

void gw_auth_session_stop(gw_conn_t *c) {
  gw_loop_t *loop = gw_loop_main();
  if (loop && ev_is_active(&c->auth_timer)) ev_timer_stop(loop, &c->auth_timer);
}

void gw_auth_session_start(gw_conn_t *c, double exp) {
  gw_auth_session_stop(c);
  c->auth_exp = exp;
  c->auth_asked = 0;
  gw_loop_t *loop = gw_loop_main();
  if (exp <= 0 || !loop) return;
  double in = exp - gw_auth_now();
  ev_timer_init(&c->auth_timer, on_timer, in > 0 ? in : 0, 0);
  ev_timer_start(loop, &c->auth_timer);
}

int gw_auth_session_check(gw_conn_t *c, const gw_request_t *req, gw_auth_claims_t *claims,
                          char *reason, size_t reasonlen) {
  gw_policy_t *p = gw_policy_current();
  gw_auth_t *a = p ? p->auth : NULL;
  gw_auth_status_t s;
  memset(claims, 0, sizeof *claims);
  if (req->token && *req->token) {
    s = gw_auth_verify(a, req->token, gw_auth_now(), claims);
  } else if (!a || !gw_auth_settings(a)->required) {
    return 0;
  } else {
    s = GW_AUTH_MISSING;
    snprintf(claims->detail, sizeof claims->detail, "no token (Authorization: Bearer, %s?token=)",
             gw_auth_settings(a)->cookie ? "the cookie, " : "");
  }
  if (s == GW_AUTH_OK) return 0;
  snprintf(reason, reasonlen, "%s", gw_auth_status_code(s));
  gw_series_add(gw_metric_series1(gw_stats.auth_refusals, reason), 1);
  gw_log(GW_LOG_INFO, c->id, "unauthorized: %s (%s) from %s", reason, claims->detail, c->remote);
  gw_auth_claims_free(claims);
  return GW_CLOSE_UNAUTHORIZED;
}

int gw_auth_session_refresh(gw_conn_t *c, const char *token, double *new_exp, char *reason,
                            size_t reasonlen) {
  gw_policy_t *p = gw_policy_current();
  gw_auth_claims_t cl;
  gw_auth_status_t s = gw_auth_verify(p->auth, token, gw_auth_now(), &cl);
  if (s != GW_AUTH_OK) {
    snprintf(reason, reasonlen, "%s", gw_auth_status_code(s));
    gw_log(GW_LOG_INFO, c->id, "auth:refresh refused: %s (%s)", reason, cl.detail);
    gw_auth_claims_free(&cl);
    return -1;
  }
  /* the policy's auth hook names the token's identity: it must be this connection's */
  gw_request_t req;
  memset(&req, 0, sizeof req);
  req.path = "";
  req.claims_json = cl.json;
  gw_verdict_t v;
  gw_policy_on_auth(p, c, &req, &v);
  const char *user = v.status == GW_VERDICT_OK && v.data_idx ? lua_tostring(p->vm->L, v.data_idx) : NULL;
  int rc = 0;
  if (v.status != GW_VERDICT_OK) {
    snprintf(reason, reasonlen, "%s", v.status == GW_VERDICT_REJECT ? v.code : "internal_error");
    rc = -1;
  } else if (!user || !c->user || strcmp(user, c->user) != 0) {
    snprintf(reason, reasonlen, "identity_mismatch");
    rc = -1;
  }
  gw_policy_verdict_end(p, &v);
  if (rc == 0) {
    gw_auth_session_start(c, cl.exp);
    if (new_exp) *new_exp = cl.exp;
    gw_log(GW_LOG_DEBUG, c->id, "token refreshed (exp in %.0f s)", cl.exp ? cl.exp - gw_auth_now() : -1);
  } else {
    gw_log(GW_LOG_INFO, c->id, "auth:refresh refused: %s", reason);
  }
  gw_auth_claims_free(&cl);
  return rc;
}
