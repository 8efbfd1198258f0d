/* The global rate-limit store against a real redis-server: two stores (two gateways) share
 * one budget (100 allowed in total, not 200), the script is one EVALSHA per allowed check
 * with EVAL after NOSCRIPT, and with Redis gone the store falls back to local buckets,
 * counting the outage once. Also through ratelimit.c (gw_ratelimit_set_global_store). */
#include <hiredis/hiredis.h>

#include "check.h"
#include "errors.h"
#include "log.h"
#include "ratelimit_redis.h"
#include "redis_conn.h"
#include "redis_server.h"

static gw_loop_t *loop;

typedef struct pair {
  gw_redis_conn_t *conn;
  gw_rl_redis_t *s;
} pair_t;

static int conn_up(void *ud) { return gw_redis_conn_is_up(((pair_t *)ud)->conn); }
static int conn_down(void *ud) { return !conn_up(ud); }

static void open_pair(pair_t *p, gw_redis_config_t *cfg) {
  gw_redis_conn_opts_t o = {.cfg = cfg, .loop = loop, .backoff_min_ms = 50, .backoff_max_ms = 300};
  CHECK_EQ_INT(gw_redis_conn_new(&o, &p->conn), 0);
  gw_rl_redis_config_t c = {.conn = p->conn, .prefix = "aivo:"};
  CHECK_EQ_INT(gw_rl_redis_new(&c, &p->s), 0);
  CHECK(test_run_until(loop, conn_up, p, 5));
}

static gw_rl_rule_t rule(const char *key) {
  gw_rl_rule_t r = {.key = key, .keylen = strlen(key), .limit = 100, .window_ms = 3600e3,
                    .burst = 100, .cost = 1, .name = "msgs", .global = 1};
  return r;
}

static double now_ms(void) { return ev_now(loop) * 1000.0; }

static int take(pair_t *p, const char *key, gw_rl_result_t *res) {
  gw_rl_rule_t r = rule(key);
  const gw_rl_store_t *st = gw_rl_redis_store(p->s);
  CHECK_EQ_INT(st->take(st->ud, &r, 1, now_ms(), res), 0);
  return res->allowed;
}

/* Runs the loop until p's scripts have all answered. */
static void settle(pair_t *p) {
  gw_redis_conn_stats_t cs;
  double until = test_now_s() + 2;
  do {
    ev_run(loop, EVRUN_NOWAIT);
    gw_redis_conn_stats(p->conn, &cs);
  } while (cs.pending && test_now_s() < until);
}

static double redis_level(test_redis_t *r, const char *key) {
  redisReply *rep = test_redis_cmd(r, "HGET aivo:rl:%s l", key);
  double v = rep && rep->type == REDIS_REPLY_STRING ? strtod(rep->str, NULL) : -1;
  if (rep) freeReplyObject(rep);
  return v;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  gw_log_setup(GW_LOG_ERROR, GW_LOG_TEXT);
  loop = gw_loop_new();
  test_redis_t r;
  if (!CHECK(test_redis_start(&r, 0, NULL) == 0)) return check_done();
  gw_redis_config_t cfg;
  gw_redis_config_defaults(&cfg);
  cfg.port = r.port;
  pair_t A, B;
  open_pair(&A, &cfg);
  open_pair(&B, &cfg);
  gw_rl_result_t res;

  /* one gateway at a time: exactly the budget, 60 on A then 40 on B */
  int a = 0, b = 0;
  for (int i = 0; i < 60; i++) {
    a += take(&A, "user:one", &res);
    settle(&A);
  }
  for (int i = 0; i < 100; i++) {
    b += take(&B, "user:one", &res);
    settle(&B);
  }
  CHECK_EQ_INT(a, 60);
  CHECK_EQ_INT(b, 40);
  CHECK(!res.allowed && res.retry_after_ms > 30000); /* one unit per 36 s */
  CHECK(redis_level(&r, "user:one") > 99.9 && redis_level(&r, "user:one") <= 100.0);

  /* both gateways alternating (a user with a connection on each): 100 in total, not 200;
   * at most one more allowed than the budget (the one the slower node let through before it
   * heard of the other's), and Redis never charges past the burst */
  int total = 0;
  for (int i = 0; i < 150; i++) {
    total += take(&A, "user:two", &res);
    settle(&A);
    total += take(&B, "user:two", &res);
    settle(&B);
  }
  printf("alternating on two stores: %d allowed of 300\n", total);
  CHECK(total >= 100 && total <= 101);
  CHECK(redis_level(&r, "user:two") <= 100.0);
  gw_rl_redis_stats_t sa, sb;
  gw_rl_redis_stats(A.s, &sa);
  gw_rl_redis_stats(B.s, &sb);
  CHECK_EQ_INT(sa.over_admitted + sb.over_admitted, total - 100);
  CHECK_EQ_INT(sa.errors + sb.errors, 0);
  /* refusals send nothing: one script per allowed check */
  CHECK_EQ_INT(sa.sent, sa.allowed);

  /* the script goes as EVALSHA; after SCRIPT FLUSH one EVAL reloads it */
  {
    long evsha0 = test_redis_calls(&r, "evalsha"), ev0 = test_redis_calls(&r, "eval");
    redisReply *rep = test_redis_cmd(&r, "SCRIPT FLUSH");
    freeReplyObject(rep);
    CHECK(take(&A, "user:three", &res));
    settle(&A);
    CHECK(take(&A, "user:three", &res));
    settle(&A);
    CHECK_EQ_INT(test_redis_calls(&r, "evalsha") - evsha0, 2);
    CHECK_EQ_INT(test_redis_calls(&r, "eval") - ev0, 1);
    CHECK(redis_level(&r, "user:three") > 1.9);
  }

  /* several rules are all-or-nothing: one full bucket refuses and charges none */
  {
    gw_rl_rule_t rules[2] = {rule("room:x"), rule("user:two")}; /* user:two is spent, and A knows */
    const gw_rl_store_t *st = gw_rl_redis_store(A.s);
    CHECK_EQ_INT(st->take(st->ud, rules, 2, now_ms(), &res), 0);
    CHECK(!res.allowed);
    CHECK_EQ_INT(res.rule, 1);
    CHECK_EQ_INT(res.exceeded, 2);
    settle(&A);
    CHECK(redis_level(&r, "room:x") < 0); /* never written */
  }

  /* through ratelimit.c: a global rule goes to the store */
  {
    gw_ratelimit_set_global_store(gw_rl_redis_store(B.s));
    gw_rl_rule_t g = rule("user:four");
    int n = 0;
    for (int i = 0; i < 120; i++) {
      CHECK_EQ_INT(gw_ratelimit_take(&g, 1, now_ms(), &res), 0);
      n += res.allowed;
      settle(&B);
    }
    CHECK_EQ_INT(n, 100);
    CHECK(redis_level(&r, "user:four") > 99.9);
    gw_ratelimit_set_global_store(NULL);
  }

  /* the mirror stays within max_keys (oldest dropped), and checks go on */
  {
    pair_t C;
    gw_redis_conn_opts_t o = {.cfg = &cfg, .loop = loop};
    CHECK_EQ_INT(gw_redis_conn_new(&o, &C.conn), 0);
    gw_rl_redis_config_t c = {.conn = C.conn, .prefix = "aivo:", .max_keys = 4};
    CHECK_EQ_INT(gw_rl_redis_new(&c, &C.s), 0);
    CHECK(test_run_until(loop, conn_up, &C, 5));
    for (int i = 0; i < 20; i++) {
      char key[32];
      snprintf(key, sizeof key, "many:%d", i);
      CHECK(take(&C, key, &res));
      settle(&C);
    }
    gw_rl_redis_stats_t sc;
    gw_rl_redis_stats(C.s, &sc);
    CHECK(sc.keys <= 4);
    CHECK(sc.evicted >= 16);
    CHECK(redis_level(&r, "many:19") > 0.9);
    gw_rl_redis_free(C.s);
    gw_redis_conn_free(C.conn);
  }

  /* Redis gone: local buckets per process (neither all refused nor all allowed), one outage */
  {
    test_redis_stop(&r);
    CHECK(test_run_until(loop, conn_down, &A, 3));
    gw_rl_redis_stats(A.s, &sa);
    uint64_t out0 = sa.outages;
    int n = 0;
    for (int i = 0; i < 150; i++) n += take(&A, "user:five", &res);
    CHECK_EQ_INT(n, 100);
    gw_rl_redis_stats(A.s, &sa);
    CHECK_EQ_INT(sa.outages - out0, 1);
    CHECK(sa.fallback_checks >= 150);
  }

  gw_rl_redis_free(A.s);
  gw_rl_redis_free(B.s);
  gw_redis_conn_free(A.conn);
  gw_redis_conn_free(B.conn);
  gw_ratelimit_clear();
  gw_loop_free(loop);
  return check_done();
}
