/* gw_ratelimit: the token bucket (exact burst, refill, retry-after), several rules all or
 * nothing, idle expiry, the global-store seam, refusal JSON shapes and connection admission.
 * Every test drives its own clock, so nothing here depends on how fast the machine is. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "errors.h"
#include "ratelimit.h"

static gw_rl_rule_t rule(const char *key, double limit, double window_s) {
  gw_rl_rule_t r = {key, strlen(key), limit, window_s * 1000, limit, 1, "test", 0};
  return r;
}

/* Sends n messages at time t through rules; returns how many passed. */
static int burst(const gw_rl_rule_t *rules, size_t nr, int n, double t) {
  int ok = 0;
  for (int i = 0; i < n; i++) {
    gw_rl_result_t res;
    if (gw_ratelimit_take(rules, nr, t, &res) == 0 && res.allowed) ok++;
  }
  return ok;
}

/* 100 per minute: a burst of 150 lets exactly 100 through; then one per 600 ms. */
static void test_burst_and_refill(void) {
  gw_ratelimit_clear();
  gw_rl_rule_t r = rule("conn:1", 100, 60);
  double t = 1000;
  CHECK_EQ_INT(burst(&r, 1, 150, t), 100);
  gw_rl_result_t res;
  CHECK_EQ_INT(gw_ratelimit_take(&r, 1, t, &res), 0);
  CHECK(!res.allowed);
  CHECK_EQ_INT(res.retry_after_ms, 600); /* one unit refills in 60000/100 ms */
  CHECK_EQ_INT(res.rule, 0);
  CHECK_EQ_INT(res.exceeded, 1);
  /* refused messages took nothing: the wait did not grow */
  CHECK_EQ_INT(gw_ratelimit_take(&r, 1, t + 300, &res), 0);
  CHECK(!res.allowed);
  CHECK_EQ_INT(res.retry_after_ms, 300);
  /* 1 ms early: still refused; on time: one passes, and only one */
  CHECK_EQ_INT(burst(&r, 1, 1, t + 599), 0);
  CHECK_EQ_INT(burst(&r, 1, 5, t + 600), 1);
  /* after 6 s: 10 more */
  CHECK_EQ_INT(burst(&r, 1, 20, t + 6600), 10);
  /* after a full minute of silence: the whole burst again */
  CHECK_EQ_INT(burst(&r, 1, 150, t + 6600 + 60000), 100);
  CHECK_EQ_INT(gw_ratelimit_count(), 1);
}

static void test_cost_and_burst(void) {
  gw_ratelimit_clear();
  /* 10 per second, bursts of 3: an upload costing 2 */
  gw_rl_rule_t r = rule("user:ann", 10, 1);
  r.burst = 3;
  r.cost = 2;
  gw_rl_result_t res;
  CHECK_EQ_INT(burst(&r, 1, 5, 0), 1); /* 2 of 3 used; 4 > 3 */
  CHECK_EQ_INT(gw_ratelimit_take(&r, 1, 0, &res), 0);
  CHECK_EQ_INT(res.retry_after_ms, 100); /* one unit short, at 10/s */
  CHECK_EQ_INT(burst(&r, 1, 1, 100), 1);
  CHECK(fabs(gw_ratelimit_level("user:ann", 8, 10, 1000, 100) - 3) < 1e-9);
  /* cost 0 never refuses and creates nothing */
  gw_rl_rule_t free_rule = rule("free", 1, 60);
  free_rule.cost = 0;
  CHECK_EQ_INT(burst(&free_rule, 1, 50, 0), 50);
  CHECK_EQ_INT(gw_ratelimit_count(), 1);
  /* a fractional rate: 1 per 2.5 s */
  gw_rl_rule_t slow = rule("slow", 0.4, 1);
  slow.burst = 1;
  CHECK_EQ_INT(burst(&slow, 1, 3, 0), 1);
  CHECK_EQ_INT(gw_ratelimit_take(&slow, 1, 0, &res), 0);
  CHECK_EQ_INT(res.retry_after_ms, 2500);
}

static void test_malformed(void) {
  gw_ratelimit_clear();
  gw_rl_result_t res;
  gw_rl_rule_t r = rule("k", 0, 60);
  CHECK_EQ_INT(gw_ratelimit_take(&r, 1, 0, &res), GW_EINVAL);
  r = rule("k", 10, 0);
  CHECK_EQ_INT(gw_ratelimit_take(&r, 1, 0, &res), GW_EINVAL);
  r = rule("k", 10, 60);
  r.cost = 11; /* more than the burst: could never pass */
  CHECK_EQ_INT(gw_ratelimit_take(&r, 1, 0, &res), GW_EINVAL);
  r = rule("", 10, 60);
  CHECK_EQ_INT(gw_ratelimit_take(&r, 1, 0, &res), GW_EINVAL);
  r = rule("k", NAN, 60);
  CHECK_EQ_INT(gw_ratelimit_take(&r, 1, 0, &res), GW_EINVAL);
  gw_rl_rule_t many[GW_RL_MAX_RULES + 1];
  for (int i = 0; i <= GW_RL_MAX_RULES; i++) many[i] = rule("k", 10, 60);
  CHECK_EQ_INT(gw_ratelimit_take(many, GW_RL_MAX_RULES + 1, 0, &res), GW_EINVAL);
  CHECK_EQ_INT(gw_ratelimit_count(), 0);
  /* zero rules: allowed */
  CHECK_EQ_INT(gw_ratelimit_take(many, 0, 0, &res), 0);
  CHECK(res.allowed);
}

/* Two rules on one message: per connection and per user. A refusal by either charges neither. */
static void test_two_rules(void) {
  gw_ratelimit_clear();
  gw_rl_rule_t a[2] = {rule("conn:1", 5, 60), rule("user:bob", 8, 60)};
  gw_rl_rule_t b[2] = {rule("conn:2", 5, 60), rule("user:bob", 8, 60)};
  a[0].name = b[0].name = "per_connection";
  a[1].name = b[1].name = "per_user";
  CHECK_EQ_INT(burst(a, 2, 7, 0), 5); /* the connection rule stops conn 1 at 5 */
  CHECK(fabs(gw_ratelimit_level("user:bob", 8, 8, 60000, 0) - 5) < 1e-9); /* 2 refused: not charged */
  gw_rl_result_t res;
  CHECK_EQ_INT(burst(b, 2, 7, 0), 3); /* the user rule stops conn 2 at 8 - 5 */
  CHECK_EQ_INT(gw_ratelimit_take(b, 2, 0, &res), 0);
  CHECK(!res.allowed);
  CHECK_EQ_INT(res.rule, 1);
  CHECK_EQ_INT(res.exceeded, 2);
  CHECK(fabs(gw_ratelimit_level("conn:2", 6, 5, 60000, 0) - 3) < 1e-9);
  /* both exceeded: the longer wait wins, both are flagged */
  gw_rl_rule_t c[2] = {rule("conn:1", 5, 60), rule("user:bob", 8, 6)};
  CHECK_EQ_INT(gw_ratelimit_take(c, 2, 0, &res), 0);
  CHECK(!res.allowed);
  CHECK_EQ_INT(res.exceeded, 3);
  CHECK_EQ_INT(res.rule, 0);
  CHECK_EQ_INT(res.retry_after_ms, 12000);
}

/* Buckets expire once drained, and only then; the sweep resumes where it stopped. */
static void test_sweep(void) {
  gw_ratelimit_clear();
  char key[32];
  for (int i = 0; i < 50; i++) {
    snprintf(key, sizeof key, "k%d", i);
    gw_rl_rule_t r = rule(key, 10, 1); /* drains 1 unit per 100 ms */
    r.cost = (i % 5) + 1;
    burst(&r, 1, 1, 0);
  }
  CHECK_EQ_INT(gw_ratelimit_count(), 50);
  CHECK_EQ_INT(gw_ratelimit_sweep(99, 1000), 0); /* nothing drained yet */
  /* at 250 ms the buckets of cost 1 and 2 are empty: 20 of them */
  size_t removed = 0;
  for (int i = 0; i < 10; i++) removed += gw_ratelimit_sweep(250, 7); /* a bounded sweep */
  CHECK_EQ_INT(removed, 20);
  CHECK_EQ_INT(gw_ratelimit_count(), 30);
  gw_rl_rule_t r4 = rule("k3", 10, 1); /* cost 4: drains at 400 ms */
  CHECK(fabs(gw_ratelimit_level("k3", 2, 10, 1000, 250) - 1.5) < 1e-9);
  /* touching a bucket keeps it: k3 used again at 300 */
  CHECK_EQ_INT(burst(&r4, 1, 1, 300), 1);
  /* at 450: cost 3 (drained at 300) and cost 4 (400) are gone, but not k3 (drains at 500) */
  removed = 0;
  for (int i = 0; i < 20; i++) removed += gw_ratelimit_sweep(450, 7);
  CHECK_EQ_INT(removed, 19);
  CHECK_EQ_INT(gw_ratelimit_count(), 11);
  for (int i = 0; i < 5; i++) gw_ratelimit_sweep(10000, 7);
  CHECK_EQ_INT(gw_ratelimit_count(), 0);
  /* a swept bucket starts full again, as if it had never been used: nothing was lost */
  gw_rl_rule_t again = rule("k0", 10, 1);
  CHECK_EQ_INT(burst(&again, 1, 20, 20000), 10);
}

/* The seam: global rules go to the shared store, after the local ones allowed. */
typedef struct {
  int calls, allow;
  size_t last_n;
  char last_key[32];
} fake_store_t;

static int fake_take(void *ud, const gw_rl_rule_t *rules, size_t n, double now, gw_rl_result_t *out) {
  (void)now;
  fake_store_t *f = ud;
  f->calls++;
  f->last_n = n;
  snprintf(f->last_key, sizeof f->last_key, "%.*s", (int)rules[0].keylen, rules[0].key);
  memset(out, 0, sizeof *out);
  out->allowed = f->allow;
  if (!f->allow) {
    out->retry_after_ms = 1234.5;
    out->exceeded = 1;
  }
  return 0;
}

static void test_global_store(void) {
  gw_ratelimit_clear();
  fake_store_t f = {0, 1, 0, ""};
  gw_rl_store_t store = {fake_take, &f};
  gw_ratelimit_set_global_store(&store);
  gw_rl_rule_t rules[2] = {rule("conn:1", 2, 60), rule("user:zed", 100, 60)};
  rules[1].global = 1;
  CHECK_EQ_INT(burst(rules, 2, 2, 0), 2);
  CHECK_EQ_INT(f.calls, 2);
  CHECK_EQ_INT(f.last_n, 1);
  CHECK_STR(f.last_key, "user:zed");
  CHECK_EQ_INT(gw_ratelimit_count(), 1); /* the global rule has no local bucket */
  /* the local rule refuses: the store is not asked (nothing charged there) */
  CHECK_EQ_INT(burst(rules, 2, 1, 0), 0);
  CHECK_EQ_INT(f.calls, 2);
  /* the store refuses: its wait and rule index come back; the local bucket is not charged */
  f.allow = 0;
  gw_rl_result_t res;
  CHECK_EQ_INT(gw_ratelimit_take(rules, 2, 60000, &res), 0);
  CHECK(!res.allowed);
  CHECK_EQ_INT(res.rule, 1);
  CHECK_EQ_INT(res.exceeded, 2);
  CHECK_EQ_INT(res.retry_after_ms, 1235);
  CHECK(gw_ratelimit_level("conn:1", 6, 2, 60000, 60000) < 1e-9);
  /* no store: global rules are kept locally */
  gw_ratelimit_set_global_store(NULL);
  CHECK_EQ_INT(burst(rules, 2, 5, 120000), 2);
  CHECK_EQ_INT(gw_ratelimit_count(), 2);
}

static void test_refusal_json(void) {
  char buf[512];
  size_t n = gw_ratelimit_refusal_json(GW_RL_SHAPE_ERROR, 599.2, "too many messages", buf, sizeof buf);
  CHECK_STR(buf, "{\"code\":\"rate_limited\",\"message\":\"too many messages\",\"retryAfterMs\":600}");
  CHECK_EQ_INT(n, strlen(buf));
  gw_ratelimit_refusal_json(GW_RL_SHAPE_ACK, 600, "say \"when\"", buf, sizeof buf);
  CHECK_STR(buf, "{\"rateLimited\":true,\"retryAfterMs\":600,\"code\":\"rate_limited\","
                 "\"message\":\"say \\\"when\\\"\"}");
  /* a small buffer: truncated, never overrun */
  char tiny[16];
  n = gw_ratelimit_refusal_json(GW_RL_SHAPE_ERROR, 1, "x", tiny, sizeof tiny);
  CHECK_EQ_INT(n, 15);
  CHECK_EQ_INT(strlen(tiny), 15);
}

static void test_admission(void) {
  gw_ratelimit_clear();
  double retry;
  /* off by default (0, 0): always admitted */
  for (int i = 0; i < 100; i++) CHECK_EQ_INT(gw_ratelimit_admit("10.0.0.1", 0, 0, 0, &retry), GW_ADMIT_OK);
  /* 3 new connections per second per address */
  int ok = 0;
  for (int i = 0; i < 5; i++) ok += gw_ratelimit_admit("10.0.0.1", 0, 3, 0, &retry) == GW_ADMIT_OK;
  CHECK_EQ_INT(ok, 3);
  CHECK_EQ_INT(gw_ratelimit_admit("10.0.0.1", 0, 3, 0, &retry), GW_ADMIT_IP_RATE);
  CHECK_EQ_INT(retry, 334); /* 1000/3 ms, rounded up */
  CHECK_EQ_INT(gw_ratelimit_admit("10.0.0.2", 0, 3, 0, &retry), GW_ADMIT_OK); /* another address */
  CHECK_EQ_INT(gw_ratelimit_admit("10.0.0.1", 334, 3, 0, &retry), GW_ADMIT_OK);
  /* concurrent: counted as the gateway opens and closes connections */
  for (int i = 0; i < 2; i++) gw_ratelimit_conn_opened("10.0.0.3");
  CHECK_EQ_INT(gw_ratelimit_conns_from("10.0.0.3"), 2);
  CHECK_EQ_INT(gw_ratelimit_admit("10.0.0.3", 0, 0, 2, &retry), GW_ADMIT_IP_CONCURRENT);
  CHECK_EQ_INT(gw_ratelimit_admit("10.0.0.3", 0, 0, 3, &retry), GW_ADMIT_OK);
  gw_ratelimit_conn_closed("10.0.0.3");
  CHECK_EQ_INT(gw_ratelimit_admit("10.0.0.3", 0, 0, 2, &retry), GW_ADMIT_OK);
  gw_ratelimit_conn_closed("10.0.0.3");
  gw_ratelimit_conn_closed("10.0.0.3"); /* one close too many: ignored */
  CHECK_EQ_INT(gw_ratelimit_conns_from("10.0.0.3"), 0);
  /* a refusal for concurrency does not use up the per-second budget */
  gw_ratelimit_conn_opened("10.0.0.4");
  CHECK_EQ_INT(gw_ratelimit_admit("10.0.0.4", 0, 1, 1, &retry), GW_ADMIT_IP_CONCURRENT);
  gw_ratelimit_conn_closed("10.0.0.4");
  CHECK_EQ_INT(gw_ratelimit_admit("10.0.0.4", 0, 1, 1, &retry), GW_ADMIT_OK);
  gw_ratelimit_clear();
  CHECK_EQ_INT(gw_ratelimit_count(), 0);
}

/* Precision: a million messages at exactly the allowed rate, with no burst to spare, all
 * pass, on the large clock values of a long-running gateway. */
static void test_steady_rate(void) {
  gw_ratelimit_clear();
  gw_rl_rule_t r = rule("steady", 100, 60);
  r.burst = 1;
  double t = 5e9; /* a gateway up for two months: large clock values */
  int refused = 0;
  for (int i = 0; i < 1000000; i++) {
    gw_rl_result_t res;
    gw_ratelimit_take(&r, 1, t + i * 600.0, &res);
    if (!res.allowed) refused++;
  }
  CHECK_EQ_INT(refused, 0);
  /* and one more at the same instant as the last is refused, for one interval */
  gw_rl_result_t res;
  gw_ratelimit_take(&r, 1, t + 999999 * 600.0, &res);
  CHECK(!res.allowed);
  CHECK_EQ_INT(res.retry_after_ms, 600);
  gw_ratelimit_clear();
}

int main(void) {
  test_burst_and_refill();
  test_cost_and_burst();
  test_malformed();
  test_two_rules();
  test_sweep();
  test_global_store();
  test_refusal_json();
  test_admission();
  test_steady_rate();
  gw_ratelimit_clear();
  return check_done();
}
