#include "ratelimit_redis.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uthash.h>

#include "errors.h"
#include "log.h"
#include "redis_script.h"

#define EPS 1e-9

typedef struct entry {
  double level;    /* units in use at `at`, this node's unconfirmed charges included */
  double at;       /* ms, the caller's clock */
  double inflight; /* units charged here whose script has not answered */
  double rate;     /* units/ms of the last rule that used it */
  unsigned refs;   /* scripts in flight that point here */
  size_t keylen;
  UT_hash_handle hh;
  char key[];
} entry_t;

typedef struct call {
  struct call *next, *prev;
  gw_rl_redis_t *s; /* NULL: the store is gone */
  size_t n;
  entry_t *e[GW_RL_MAX_RULES];
  double cost[GW_RL_MAX_RULES];
} call_t;

struct gw_rl_redis {
  gw_rl_store_t table;
  gw_redis_conn_t *conn;
  char prefix[GW_REDIS_PREFIX_MAX + 1];
  size_t max_keys;
  entry_t *entries;
  call_t *calls;
  gw_redis_script_t script;
  int was_up;
  double now; /* the last take's clock */
  gw_rl_redis_stats_t st;
};

/* KEYS: buckets; ARGV: limit, window_ms, burst, cost per rule. Returns {allowed, worst rule
 * (0-based), wait ms (string), exceeded bits, level per rule (strings)}. */
static const char TAKE_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n"
    "local lv, allowed, worst, wait, exceeded = {}, 1, 0, 0, 0\n"
    "for i = 1, #KEYS do\n"
    "  local limit, win = tonumber(ARGV[4*i-3]), tonumber(ARGV[4*i-2])\n"
    "  local burst, cost = tonumber(ARGV[4*i-1]), tonumber(ARGV[4*i])\n"
    "  local rate = limit / win\n"
    "  local h = redis.call('HMGET', KEYS[i], 'l', 't')\n"
    "  local l, at = tonumber(h[1]) or 0, tonumber(h[2]) or now\n"
    "  local el = now - at\n"
    "  if el < 0 then el = 0 end\n"
    "  l = l - el * rate\n"
    "  if l < 0 then l = 0 end\n"
    "  lv[i] = l\n"
    "  local after = l + cost\n"
    "  if cost > 0 and after > burst * (1 + 1e-9) then\n"
    "    allowed = 0\n"
    "    exceeded = exceeded + 2 ^ (i - 1)\n"
    "    local w = (after - burst) / rate\n"
    "    if w > wait then wait = w; worst = i - 1 end\n"
    "  end\n"
    "end\n"
    "if allowed == 1 then\n"
    "  for i = 1, #KEYS do\n"
    "    local cost = tonumber(ARGV[4*i])\n"
    "    if cost > 0 then\n"
    "      local rate = tonumber(ARGV[4*i-3]) / tonumber(ARGV[4*i-2])\n"
    "      lv[i] = lv[i] + cost\n"
    "      redis.call('HSET', KEYS[i], 'l', tostring(lv[i]), 't', tostring(now))\n"
    "      redis.call('PEXPIRE', KEYS[i], math.ceil(lv[i] / rate) + 1000)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local out = {allowed, worst, tostring(wait), exceeded}\n"
    "for i = 1, #KEYS do out[4 + i] = tostring(lv[i]) end\n"
    "return out\n";

static double level_at(const entry_t *e, double rate, double now) {
  if (!e) return 0;
  double el = now > e->at ? now - e->at : 0;
  double l = e->level - el * rate;
  return l > 0 ? l : 0;
}

/* Keeps the mirror within max_keys: the oldest entries (uthash keeps insertion order) go
 * first, those with a script in flight are moved to the back. A mirror entry is a cache of
 * Redis's bucket, so dropping one costs at most one optimistic check later. Bounded work per
 * call, so that many distinct keys cannot make a check slow. */
static void trim(gw_rl_redis_t *s) {
  for (int visits = 0; HASH_COUNT(s->entries) >= s->max_keys && visits < 64; visits++) {
    entry_t *e = s->entries;
    HASH_DEL(s->entries, e);
    if (e->refs) {
      HASH_ADD_KEYPTR(hh, s->entries, e->key, e->keylen, e);
      continue;
    }
    free(e);
    s->st.evicted++;
  }
}

static entry_t *entry_get(gw_rl_redis_t *s, const gw_rl_rule_t *r, double now) {
  entry_t *e;
  HASH_FIND(hh, s->entries, r->key, r->keylen, e);
  if (e) return e;
  trim(s);
  if (HASH_COUNT(s->entries) >= s->max_keys) return NULL; /* all in flight: refuse, no memory */
  e = calloc(1, sizeof *e + r->keylen + 1);
  if (!e) return NULL;
  memcpy(e->key, r->key, r->keylen);
  e->keylen = r->keylen;
  e->at = now;
  HASH_ADD_KEYPTR(hh, s->entries, e->key, e->keylen, e);
  return e;
}

static void call_unlink(gw_rl_redis_t *s, call_t *k) {
  if (k->prev) k->prev->next = k->next;
  else s->calls = k->next;
  if (k->next) k->next->prev = k->prev;
}

static void on_reply(void *ud, int status, const struct redisReply *reply) {
  call_t *k = ud;
  gw_rl_redis_t *s = k->s;
  const redisReply *r = reply;
  if (!s) {
    free(k);
    return;
  }
  call_unlink(s, k);
  for (size_t i = 0; i < k->n; i++)
    if (k->e[i]) {
      k->e[i]->inflight -= k->cost[i];
      k->e[i]->refs--;
      if (!k->e[i]->refs) k->e[i]->inflight = 0; /* no float residue */
    }
  int ok = status == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 4 + k->n &&
           r->element[0]->type == REDIS_REPLY_INTEGER;
  for (size_t i = 0; ok && i < k->n; i++) ok = r->element[4 + i]->type == REDIS_REPLY_STRING;
  if (!ok) {
    s->st.errors++; /* the local charge stays: the mirror errs on the side of refusing */
    free(k);
    return;
  }
  if (r->element[0]->integer == 0) s->st.over_admitted++;
  for (size_t i = 0; i < k->n; i++) {
    entry_t *e = k->e[i];
    if (!e) continue;
    double lv = strtod(r->element[4 + i]->str, NULL);
    if (!isfinite(lv) || lv < 0) lv = 0;
    e->level = lv + (e->inflight > 0 ? e->inflight : 0);
    e->at = s->now;
  }
  free(k);
}

static void send_check(gw_rl_redis_t *s, const gw_rl_rule_t *rules, size_t n, entry_t **es) {
  call_t *k = calloc(1, sizeof *k);
  if (!k) return;
  char keys[GW_RL_MAX_RULES][GW_REDIS_PREFIX_MAX + 3 + GW_RL_KEY_MAX];
  char nums[GW_RL_MAX_RULES][4][32];
  const char *argv[GW_RL_MAX_RULES * 5] = {0};
  size_t lens[GW_RL_MAX_RULES * 5] = {0};
  size_t plen = strlen(s->prefix);
  for (size_t i = 0; i < n; i++) {
    memcpy(keys[i], s->prefix, plen);
    memcpy(keys[i] + plen, "rl:", 3);
    memcpy(keys[i] + plen + 3, rules[i].key, rules[i].keylen);
    argv[i] = keys[i];
    lens[i] = plen + 3 + rules[i].keylen;
    double v[4] = {rules[i].limit, rules[i].window_ms, rules[i].burst, rules[i].cost};
    for (int j = 0; j < 4; j++) {
      lens[n + 4 * i + j] = (size_t)snprintf(nums[i][j], sizeof nums[i][j], "%.17g", v[j]);
      argv[n + 4 * i + j] = nums[i][j];
    }
    k->e[i] = es[i];
    k->cost[i] = es[i] ? rules[i].cost : 0;
  }
  k->n = n;
  k->s = s;
  if (gw_redis_script_call(s->conn, &s->script, (int)n, (int)(5 * n), argv, lens, on_reply, k)) {
    s->st.errors++;
    free(k);
    return;
  }
  for (size_t i = 0; i < n; i++)
    if (es[i]) {
      es[i]->inflight += rules[i].cost;
      es[i]->refs++;
    }
  k->next = s->calls;
  if (s->calls) s->calls->prev = k;
  s->calls = k;
  s->st.sent++;
}

static int r_take(void *ud, const gw_rl_rule_t *rules, size_t n, double now, gw_rl_result_t *out) {
  gw_rl_redis_t *s = ud;
  memset(out, 0, sizeof *out);
  out->allowed = 1;
  if (n > GW_RL_MAX_RULES) return GW_EINVAL;
  s->now = now;
  s->st.checks++;
  int up = gw_redis_conn_is_up(s->conn);
  if (!up) {
    s->st.fallback_checks++;
    if (s->was_up) {
      s->st.outages++;
      gw_warn("global rate limits: Redis is unreachable; enforcing them per process until it is back");
    }
  } else if (!s->was_up && s->st.outages) {
    gw_info("global rate limits: Redis is back; limits are shared again");
  }
  s->was_up = up;
  entry_t *es[GW_RL_MAX_RULES] = {0};
  for (size_t i = 0; i < n; i++) {
    const gw_rl_rule_t *r = &rules[i];
    if (r->cost == 0) continue;
    if (!(es[i] = entry_get(s, r, now))) return GW_ENOMEM;
    double rate = r->limit / r->window_ms;
    double after = level_at(es[i], rate, now) + r->cost;
    if (after <= r->burst + EPS * r->burst) continue;
    double wait = (after - r->burst) / rate;
    out->allowed = 0;
    out->exceeded |= 1u << i;
    if (wait > out->retry_after_ms) {
      out->retry_after_ms = wait;
      out->rule = i;
    }
  }
  if (!out->allowed) {
    s->st.refused++;
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (!es[i]) continue;
    double rate = rules[i].limit / rules[i].window_ms;
    es[i]->level = level_at(es[i], rate, now) + rules[i].cost;
    es[i]->at = now;
    es[i]->rate = rate;
  }
  s->st.allowed++;
  int charged = 0;
  for (size_t i = 0; i < n; i++) charged |= es[i] != NULL;
  if (up && charged) send_check(s, rules, n, es);
  return 0;
}

int gw_rl_redis_new(const gw_rl_redis_config_t *cfg, gw_rl_redis_t **out) {
  *out = NULL;
  if (!cfg || !cfg->conn || (cfg->prefix && strlen(cfg->prefix) > GW_REDIS_PREFIX_MAX))
    return GW_EINVAL;
  gw_rl_redis_t *s = calloc(1, sizeof *s);
  if (!s) return GW_ENOMEM;
  s->conn = cfg->conn;
  snprintf(s->prefix, sizeof s->prefix, "%s", cfg->prefix ? cfg->prefix : "aivo:");
  s->max_keys = cfg->max_keys ? cfg->max_keys : 100000;
  gw_redis_script_init(&s->script, TAKE_LUA);
  s->table.take = r_take;
  s->table.ud = s;
  s->was_up = 1; /* the first check that finds it down counts an outage */
  *out = s;
  return 0;
}

const gw_rl_store_t *gw_rl_redis_store(gw_rl_redis_t *s) { return &s->table; }

void gw_rl_redis_free(gw_rl_redis_t *s) {
  if (!s) return;
  for (call_t *k = s->calls; k; k = k->next) k->s = NULL;
  entry_t *e, *tmp;
  HASH_ITER(hh, s->entries, e, tmp) {
    HASH_DEL(s->entries, e);
    free(e);
  }
  free(s);
}

void gw_rl_redis_stats(const gw_rl_redis_t *s, gw_rl_redis_stats_t *out) {
  *out = s->st;
  out->keys = HASH_COUNT(s->entries);
  out->up = gw_redis_conn_is_up(s->conn);
}
