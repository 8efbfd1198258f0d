#include "ratelimit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <luajit-2.1/lauxlib.h>
#include <uthash.h>

#include "clock.h"
#include "errors.h"
#include "json.h"
#include "log.h"
#include "room.h"
#include "stats.h"

/* Slack for the comparisons: levels are sums of doubles, and "exactly limit" must pass. */
#define EPS 1e-9

typedef struct bucket {
  double level;    /* units in use, as of `at` */
  double at;       /* ms */
  double empty_at; /* ms: when level drains to 0 at the last rule's rate (then it is idle) */
  UT_hash_handle hh;
  char key[]; /* keylen bytes, then NUL */
} bucket_t;

typedef struct ip_count {
  size_t n;
  UT_hash_handle hh;
  char ip[];
} ip_count_t;

static bucket_t *g_buckets;
static bucket_t *g_cursor; /* where the next sweep starts; only the sweep deletes buckets */
static ip_count_t *g_ips;
static const gw_rl_store_t *g_global;
static int g_global_warned;

static bucket_t *find(const char *key, size_t keylen) {
  bucket_t *b;
  HASH_FIND(hh, g_buckets, key, keylen, b);
  return b;
}

static double rate_of(const gw_rl_rule_t *r) { return r->limit / r->window_ms; } /* units/ms */

/* The bucket's level at now, after the refill since it was last touched. */
static double level_at(const bucket_t *b, double rate, double now) {
  if (!b) return 0;
  double elapsed = now > b->at ? now - b->at : 0;
  double lvl = b->level - elapsed * rate;
  return lvl > 0 ? lvl : 0;
}

static int rule_ok(const gw_rl_rule_t *r) {
  return r->key && r->keylen > 0 && r->keylen <= GW_RL_KEY_MAX && isfinite(r->limit) &&
         r->limit > 0 && isfinite(r->window_ms) && r->window_ms > 0 && isfinite(r->burst) &&
         r->burst > 0 && isfinite(r->cost) && r->cost >= 0 && r->cost <= r->burst * (1 + EPS);
}

/* Phase 1 over rules[i] for i in idx[0..n): no bucket is changed. */
static void check(const gw_rl_rule_t *rules, const size_t *idx, size_t n, double now,
                  bucket_t **found, gw_rl_result_t *out) {
  for (size_t j = 0; j < n; j++) {
    const gw_rl_rule_t *r = &rules[idx[j]];
    if (r->cost == 0) continue;
    double rate = rate_of(r);
    found[j] = find(r->key, r->keylen);
    double after = level_at(found[j], rate, now) + r->cost;
    if (after <= r->burst + EPS * r->burst) continue;
    double wait = (after - r->burst) / rate;
    out->allowed = 0;
    out->exceeded |= 1u << idx[j];
    if (wait > out->retry_after_ms) {
      out->retry_after_ms = wait;
      out->rule = idx[j];
    }
  }
}

/* Phase 2: charges every rule; creates missing buckets first so that nothing is half done. */
static int charge(const gw_rl_rule_t *rules, const size_t *idx, size_t n, double now,
                  bucket_t **found) {
  for (size_t j = 0; j < n; j++) {
    const gw_rl_rule_t *r = &rules[idx[j]];
    if (r->cost == 0 || found[j]) continue;
    if ((found[j] = find(r->key, r->keylen))) continue; /* the same key twice in one message */
    bucket_t *b = calloc(1, sizeof *b + r->keylen + 1);
    if (!b) return GW_ENOMEM;
    memcpy(b->key, r->key, r->keylen);
    b->at = now;
    HASH_ADD_KEYPTR(hh, g_buckets, b->key, r->keylen, b);
    found[j] = b;
  }
  for (size_t j = 0; j < n; j++) {
    const gw_rl_rule_t *r = &rules[idx[j]];
    if (r->cost == 0) continue;
    bucket_t *b = found[j];
    double rate = rate_of(r);
    b->level = level_at(b, rate, now) + r->cost;
    b->at = now;
    b->empty_at = now + b->level / rate;
  }
  return 0;
}

int gw_ratelimit_take(const gw_rl_rule_t *rules, size_t n, double now_ms, gw_rl_result_t *out) {
  memset(out, 0, sizeof *out);
  out->allowed = 1;
  if (n > GW_RL_MAX_RULES) return GW_EINVAL;
  size_t local[GW_RL_MAX_RULES], global[GW_RL_MAX_RULES], nl = 0, ng = 0;
  for (size_t i = 0; i < n; i++) {
    if (!rule_ok(&rules[i])) return GW_EINVAL;
    if (rules[i].global && g_global) global[ng++] = i;
    else local[nl++] = i;
    if (rules[i].global && !g_global && !g_global_warned) {
      g_global_warned = 1;
      gw_warn("rate limit rule '%s' has scope \"global\" but no shared store is configured: "
              "it is enforced per process", rules[i].name);
    }
  }
  bucket_t *found[GW_RL_MAX_RULES] = {0};
  check(rules, local, nl, now_ms, found, out);
  if (!out->allowed) goto refused;
  if (ng) {
    /* the shared store charges its rules itself, atomically, only when all of them allow */
    gw_rl_rule_t sub[GW_RL_MAX_RULES];
    for (size_t j = 0; j < ng; j++) sub[j] = rules[global[j]];
    gw_rl_result_t g;
    memset(&g, 0, sizeof g);
    int rc = g_global->take(g_global->ud, sub, ng, now_ms, &g);
    if (rc) return rc;
    if (!g.allowed) {
      out->allowed = 0;
      out->retry_after_ms = g.retry_after_ms;
      out->rule = global[g.rule < ng ? g.rule : 0];
      for (size_t j = 0; j < ng; j++)
        if (g.exceeded & (1u << j)) out->exceeded |= 1u << global[j];
      goto refused;
    }
  }
  return charge(rules, local, nl, now_ms, found);
refused:
  if (out->retry_after_ms < 1) out->retry_after_ms = 1;
  out->retry_after_ms = ceil(out->retry_after_ms);
  return 0;
}

double gw_ratelimit_level(const char *key, size_t keylen, double limit, double window_ms,
                          double now_ms) {
  if (limit <= 0 || window_ms <= 0) return 0;
  return level_at(find(key, keylen), limit / window_ms, now_ms);
}

size_t gw_ratelimit_count(void) { return HASH_COUNT(g_buckets); }

size_t gw_ratelimit_sweep(double now_ms, size_t max_visits) {
  size_t removed = 0;
  bucket_t *b = g_cursor ? g_cursor : g_buckets;
  for (size_t visited = 0; b && visited < max_visits; visited++) {
    bucket_t *next = b->hh.next;
    if (b->empty_at <= now_ms) {
      HASH_DEL(g_buckets, b);
      free(b);
      removed++;
    }
    b = next;
  }
  g_cursor = b; /* NULL: the next sweep starts from the first bucket again */
  return removed;
}

void gw_ratelimit_clear(void) {
  bucket_t *b, *tmp;
  HASH_ITER(hh, g_buckets, b, tmp) {
    HASH_DEL(g_buckets, b);
    free(b);
  }
  g_cursor = NULL;
  ip_count_t *c, *ctmp;
  HASH_ITER(hh, g_ips, c, ctmp) {
    HASH_DEL(g_ips, c);
    free(c);
  }
}

void gw_ratelimit_set_global_store(const gw_rl_store_t *store) {
  g_global = store;
  g_global_warned = 0;
}

/* ---- refusals ------------------------------------------------------------------------ */

size_t gw_ratelimit_refusal_json(gw_rl_shape_t shape, double retry_after_ms, const char *message,
                                 char *out, size_t cap) {
  char m[GW_JSON_ESCAPED_MAX(200)];
  gw_json_escape(message, strnlen(message, 200), m, sizeof m);
  double retry = retry_after_ms > 0 ? ceil(retry_after_ms) : 0;
  int n = shape == GW_RL_SHAPE_ACK
              ? snprintf(out, cap,
                         "{\"rateLimited\":true,\"retryAfterMs\":%.0f,\"code\":\"rate_limited\","
                         "\"message\":%s}",
                         retry, m)
              : snprintf(out, cap, "{\"code\":\"rate_limited\",\"message\":%s,\"retryAfterMs\":%.0f}",
                         m, retry);
  if (n < 0) return 0;
  return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* ---- connection admission ------------------------------------------------------------- */

static ip_count_t *ip_find(const char *ip) {
  ip_count_t *c;
  HASH_FIND_STR(g_ips, ip, c);
  return c;
}

size_t gw_ratelimit_conns_from(const char *ip) {
  ip_count_t *c = ip_find(ip);
  return c ? c->n : 0;
}

void gw_ratelimit_conn_opened(const char *ip) {
  ip_count_t *c = ip_find(ip);
  if (!c) {
    size_t len = strlen(ip);
    if (!(c = calloc(1, sizeof *c + len + 1))) return; /* uncounted: never refused for it */
    memcpy(c->ip, ip, len + 1);
    HASH_ADD_KEYPTR(hh, g_ips, c->ip, len, c);
  }
  c->n++;
}

void gw_ratelimit_conn_closed(const char *ip) {
  ip_count_t *c = ip_find(ip);
  if (!c) return;
  if (--c->n == 0) {
    HASH_DEL(g_ips, c);
    free(c);
  }
}

gw_admit_t gw_ratelimit_admit(const char *ip, double now_ms, double per_second,
                              size_t max_concurrent, double *retry_after_ms) {
  *retry_after_ms = 0;
  if (max_concurrent && gw_ratelimit_conns_from(ip) >= max_concurrent) return GW_ADMIT_IP_CONCURRENT;
  if (per_second > 0) {
    char key[80];
    int n = snprintf(key, sizeof key, "connect:%s", ip);
    gw_rl_rule_t r = {key, (size_t)n, per_second, 1000, per_second, 1, "connections_per_ip", 0};
    if (r.burst < 1) r.burst = 1; /* a fraction per second still lets one through at a time */
    gw_rl_result_t res;
    if (gw_ratelimit_take(&r, 1, now_ms, &res) == 0 && !res.allowed) {
      *retry_after_ms = res.retry_after_ms;
      return GW_ADMIT_IP_RATE;
    }
  }
  return GW_ADMIT_OK;
}

int gw_ratelimit_admit_user(const gw_conn_t *c, const char *user_room, char *reason, size_t reasonlen) {
  size_t max = gw_settings()->max_conns_per_user;
  gw_room_t *r = max ? gw_room_find(user_room) : NULL;
  if (!r || r->n < max) return 0;
  /* client connections, not namespaces: a client already connected as this identity may
   * add a namespace, and one Socket.IO client with several namespaces counts once */
  const void *me = gw_conn_client(c);
  for (size_t i = 0; i < r->n; i++)
    if (gw_conn_client(r->members[i].conn) == me) return 0;
  size_t clients = 0;
  for (size_t i = 0; i < r->n && clients < max; i++) {
    const void *cl = gw_conn_client(r->members[i].conn);
    size_t j = 0;
    while (j < i && gw_conn_client(r->members[j].conn) != cl) j++;
    if (j == i) clients++;
  }
  if (clients < max) return 0;
  snprintf(reason, reasonlen, "too many connections for this identity");
  gw_series_add(gw_metric_series1(gw_stats.connections_refused, "user_concurrent"), 1);
  gw_log(GW_LOG_INFO, 0, "refused a connection of %s: it has %zu open already", user_room + 5, max);
  return GW_CLOSE_RATE_LIMITED;
}

gw_admit_t gw_ratelimit_admit_now(const char *ip, double *retry_after_ms, const char **why) {
  const gw_settings_t *s = gw_settings();
  gw_admit_t a = gw_ratelimit_admit(ip, gw_clock_now_ms(), s->conn_per_ip_per_second,
                                    s->max_conns_per_ip, retry_after_ms);
  if (a == GW_ADMIT_OK) return a;
  const char *reason = a == GW_ADMIT_IP_RATE ? "ip_rate" : "ip_concurrent";
  *why = a == GW_ADMIT_IP_RATE ? "too many new connections from this address"
                               : "too many connections from this address";
  gw_series_add(gw_metric_series1(gw_stats.connections_refused, reason), 1);
  gw_log(GW_LOG_INFO, 0, "refused a connection from %s: %s", ip, *why);
  return a;
}

/* ---- aivo.core.ratelimit -------------------------------------------------------------- */

static double rule_number(lua_State *L, int t, const char *field, double dflt, int rule) {
  lua_getfield(L, t, field);
  int type = lua_type(L, -1);
  double v = type == LUA_TNUMBER ? lua_tonumber(L, -1) : dflt;
  lua_pop(L, 1);
  if (type != LUA_TNUMBER && (type != LUA_TNIL || dflt < 0))
    luaL_error(L, "rate limit rule %d: '%s' must be a number%s", rule, field,
               type == LUA_TNIL ? " (it is required)" : "");
  return v;
}

/* Reads and checks the rule table at index t (rule: its 1-based position, for errors). */
static void read_rule(lua_State *L, int t, gw_rl_rule_t *r, int rule, char *name_buf, size_t cap) {
  if (!lua_istable(L, t)) luaL_error(L, "rate limit rule %d must be a table", rule);
  for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    if (!k || !(strcmp(k, "key") == 0 || strcmp(k, "limit") == 0 || strcmp(k, "window") == 0 ||
                strcmp(k, "cost") == 0 || strcmp(k, "burst") == 0 || strcmp(k, "name") == 0 ||
                strcmp(k, "scope") == 0))
      luaL_error(L, "rate limit rule %d: unknown field '%s' (known: key, limit, window, cost, "
                 "burst, name, scope)", rule, k ? k : luaL_typename(L, -2));
  }
  lua_getfield(L, t, "key");
  r->key = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &r->keylen) : NULL;
  lua_pop(L, 1); /* the string stays alive in the rule table */
  if (!r->key || r->keylen == 0 || r->keylen > GW_RL_KEY_MAX)
    luaL_error(L, "rate limit rule %d: 'key' must be a string of 1..%d bytes", rule, GW_RL_KEY_MAX);
  r->limit = rule_number(L, t, "limit", -1, rule);
  double window = rule_number(L, t, "window", -1, rule);
  r->cost = rule_number(L, t, "cost", 1, rule);
  r->burst = rule_number(L, t, "burst", r->limit, rule);
  r->window_ms = window * 1000;
  if (!(r->limit > 0) || !(window > 0) || !(r->cost >= 0) || !(r->burst > 0) ||
      r->limit > 1e12 || window > 1e9 || r->burst > 1e12)
    luaL_error(L, "rate limit rule %d: limit, window and burst must be positive, cost not negative",
               rule);
  if (r->cost > r->burst)
    luaL_error(L, "rate limit rule %d: cost %g is more than the burst %g: the message could never "
               "pass", rule, r->cost, r->burst);
  lua_getfield(L, t, "name");
  size_t nlen = 0;
  const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &nlen) : NULL;
  if (!lua_isnil(L, -1) && (!name || nlen == 0 || nlen > GW_RL_NAME_MAX))
    luaL_error(L, "rate limit rule %d: 'name' must be a string of 1..%d bytes", rule, GW_RL_NAME_MAX);
  lua_pop(L, 1);
  if (!name) snprintf(name_buf, cap, "#%d", rule);
  r->name = name ? name : name_buf;
  lua_getfield(L, t, "scope");
  const char *scope = lua_isnil(L, -1) ? "local" : lua_tostring(L, -1);
  if (!scope || (strcmp(scope, "local") != 0 && strcmp(scope, "global") != 0))
    luaL_error(L, "rate limit rule %d: 'scope' must be \"local\" or \"global\"", rule);
  r->global = scope[0] == 'g';
  lua_pop(L, 1);
}

/* core.ratelimit(conn_id or nil, rule or list of rules) -> true, or false, retry_after_ms,
 * index of the rule with the longest wait, refusals in a row for this connection. */
int gw_ratelimit_lua_take(lua_State *L) {
  gw_conn_t *c = lua_isnoneornil(L, 1) ? NULL : gw_conn_find((uint64_t)luaL_checknumber(L, 1));
  luaL_checktype(L, 2, LUA_TTABLE);
  gw_rl_rule_t rules[GW_RL_MAX_RULES];
  char names[GW_RL_MAX_RULES][16];
  size_t n;
  lua_getfield(L, 2, "key");
  int single = !lua_isnil(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, GW_RL_MAX_RULES + 4, "rate limit rules");
  if (single) {
    read_rule(L, 2, &rules[0], 1, names[0], sizeof names[0]);
    n = 1;
  } else {
    n = lua_objlen(L, 2);
    if (n > GW_RL_MAX_RULES)
      luaL_error(L, "at most %d rate limit rules apply to one message, got %d", GW_RL_MAX_RULES, (int)n);
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, 2, (int)i + 1); /* stays on the stack: its strings are used below */
      read_rule(L, lua_gettop(L), &rules[i], (int)i + 1, names[i], sizeof names[i]);
    }
  }
  gw_rl_result_t res;
  int rc = gw_ratelimit_take(rules, n, gw_clock_now_ms(), &res);
  if (rc) return luaL_error(L, "rate limit: %s", rc == GW_ENOMEM ? "out of memory" : "bad rule");
  if (res.allowed) {
    if (c) c->rl_refused = 0;
    lua_pushboolean(L, 1);
    return 1;
  }
  for (size_t i = 0; i < n; i++)
    if (res.exceeded & (1u << i))
      gw_series_add(gw_metric_series1(gw_stats.rate_limited_rules, rules[i].name), 1);
  if (c) c->rl_refused++;
  lua_pushboolean(L, 0);
  lua_pushnumber(L, res.retry_after_ms);
  lua_pushinteger(L, (lua_Integer)res.rule + 1);
  lua_pushnumber(L, c ? c->rl_refused : 1);
  return 4;
}
