/* gw_quality: pings and pongs matched by sequence, the RTT average of the last 10 samples,
 * jitter, loss from unanswered pings (pending ones excluded), stability from reconnects of an
 * identity, classes from thresholds, and the report JSON. Every test drives its own clock. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "conn_quality.h"
#include "quality.h"

static const gw_quality_threshold_t DEF[3] = GW_QUALITY_DEFAULT_THRESHOLDS;

#define NEAR(a, b) CHECK(fabs((a) - (b)) < 1e-6)

/* Pings at t and answers after rtt ms (rtt < 0: never answered); returns the send time of
 * the next ping, interval ms later. */
static double round_trip(gw_quality_t *q, double t, double rtt, double interval) {
  unsigned char payload[GW_QUALITY_PAYLOAD];
  gw_quality_ping(q, t, payload);
  double got;
  if (rtt >= 0) CHECK(gw_quality_pong(q, payload, sizeof payload, t + rtt, &got) && fabs(got - rtt) < 0.011);
  return t + interval;
}

static gw_quality_class_t classify_now(const gw_quality_t *q, double now, gw_quality_report_t *r) {
  gw_quality_measure(q, now, 5000, r);
  return gw_quality_classify(r, DEF);
}

static void test_unknown_then_excellent(void) {
  gw_quality_t q;
  gw_quality_init(&q, 1e6);
  gw_quality_report_t r;
  CHECK_EQ_INT(classify_now(&q, 1e6, &r), GW_QUALITY_UNKNOWN);
  CHECK(!r.has_latency);
  /* a ping still in flight is pending: neither lost nor a sample */
  unsigned char payload[GW_QUALITY_PAYLOAD];
  gw_quality_ping(&q, 1e6, payload);
  CHECK_EQ_INT(classify_now(&q, 1e6 + 1000, &r), GW_QUALITY_UNKNOWN);
  CHECK_EQ_INT(r.pending, 1);
  double rtt;
  CHECK(gw_quality_pong(&q, payload, sizeof payload, 1e6 + 1000.25, &rtt));
  NEAR(rtt, 1000.25);
  /* a second answer to the same ping is ignored */
  CHECK(!gw_quality_pong(&q, payload, sizeof payload, 1e6 + 1001, &rtt));
  CHECK_EQ_INT(classify_now(&q, 1e6 + 1002, &r), GW_QUALITY_POOR); /* 1000.25 ms: not < 1000 */
  CHECK_EQ_INT(r.samples, 1);
  CHECK_EQ_INT(r.answered, 1);
}

static void test_average_of_last_10(void) {
  gw_quality_t q;
  gw_quality_init(&q, 0);
  double t = 0;
  for (int i = 0; i < 10; i++) t = round_trip(&q, t, 2000, 3000); /* 10 slow samples */
  gw_quality_report_t r;
  CHECK_EQ_INT(classify_now(&q, t, &r), GW_QUALITY_POOR);
  NEAR(r.latency_ms, 2000);
  /* fast samples push the slow ones out one by one: with k slow ones left the average is
   * (2000 k + 10 (10 - k)) / 10 = 199 k + 10: poor for k >= 5, fair for 2..4, good for 1 */
  const gw_quality_class_t want[10] = {
      GW_QUALITY_POOR, GW_QUALITY_POOR, GW_QUALITY_POOR, GW_QUALITY_POOR, GW_QUALITY_POOR,
      GW_QUALITY_FAIR, GW_QUALITY_FAIR, GW_QUALITY_FAIR, GW_QUALITY_GOOD, GW_QUALITY_EXCELLENT};
  for (int i = 0; i < 10; i++) {
    t = round_trip(&q, t, 10, 100);
    int k = 9 - i; /* slow samples left */
    CHECK_EQ_INT(classify_now(&q, t, &r), want[i]);
    NEAR(r.latency_ms, (2000.0 * k + 10.0 * (10 - k)) / 10);
    CHECK_EQ_INT(r.samples, 10);
  }
  CHECK_EQ_INT(r.lost, 0);
  NEAR(r.loss_pct, 0);
}

static void test_jitter(void) {
  gw_quality_t q;
  gw_quality_init(&q, 0);
  double t = 0;
  const double rtts[] = {10, 30, 10, 30, 20};
  for (int i = 0; i < 5; i++) t = round_trip(&q, t, rtts[i], 1000);
  gw_quality_report_t r;
  classify_now(&q, t, &r);
  NEAR(r.latency_ms, 20);
  NEAR(r.jitter_ms, (20 + 20 + 20 + 10) / 4.0); /* mean |difference| of consecutive samples */
  /* one sample: no jitter */
  gw_quality_init(&q, 0);
  round_trip(&q, 0, 50, 1000);
  classify_now(&q, 1000, &r);
  NEAR(r.jitter_ms, 0);
}

/* Loss over the last 20 pings: a ping unanswered after the pong timeout is lost. */
static void test_loss(void) {
  gw_quality_t q;
  gw_quality_init(&q, 0);
  double t = 0;
  for (int i = 0; i < 20; i++) t = round_trip(&q, t, 5, 1000);
  gw_quality_report_t r;
  CHECK_EQ_INT(classify_now(&q, t, &r), GW_QUALITY_EXCELLENT);
  /* one lost of 20 = 5%: fair (good needs < 2 %) */
  t = round_trip(&q, t, -1, 1000);
  gw_quality_measure(&q, t - 500, 5000, &r); /* 500 ms after it went out: pending */
  CHECK_EQ_INT(r.pending, 1);
  CHECK_EQ_INT(r.lost, 0);
  for (int i = 0; i < 5; i++) t = round_trip(&q, t, 5, 1000); /* 5 s later it is lost */
  CHECK_EQ_INT(classify_now(&q, t, &r), GW_QUALITY_FAIR);
  CHECK_EQ_INT(r.lost, 1);
  NEAR(r.loss_pct, 5);
  /* a second loss: 10 % is not < 10 %: poor */
  t = round_trip(&q, t, -1, 1000);
  for (int i = 0; i < 6; i++) t = round_trip(&q, t, 5, 1000);
  CHECK_EQ_INT(classify_now(&q, t, &r), GW_QUALITY_POOR);
  NEAR(r.loss_pct, 10);
  /* 20 answered pings later the losses have left the window: excellent again */
  for (int i = 0; i < 20; i++) t = round_trip(&q, t, 5, 1000);
  CHECK_EQ_INT(classify_now(&q, t, &r), GW_QUALITY_EXCELLENT);
  CHECK_EQ_INT(r.answered, 20);
  /* every ping lost and no sample ever: poor, latency unknown */
  gw_quality_init(&q, 0);
  t = 0;
  for (int i = 0; i < 3; i++) t = round_trip(&q, t, -1, 3000);
  CHECK_EQ_INT(classify_now(&q, t + 6000, &r), GW_QUALITY_POOR);
  CHECK(!r.has_latency);
  NEAR(r.loss_pct, 100);
}

/* A late pong still answers its ping (a sample), if that ping is still in the window. */
static void test_late_and_foreign_pongs(void) {
  gw_quality_t q;
  gw_quality_init(&q, 0);
  unsigned char first[GW_QUALITY_PAYLOAD], p[GW_QUALITY_PAYLOAD];
  gw_quality_ping(&q, 0, first);
  for (int i = 1; i < 5; i++) gw_quality_ping(&q, i * 100.0, p);
  double rtt;
  CHECK(gw_quality_pong(&q, first, sizeof first, 1500, &rtt));
  NEAR(rtt, 1500);
  /* the newest ping's pong */
  CHECK(gw_quality_pong(&q, p, sizeof p, 450, &rtt));
  NEAR(rtt, 50);
  /* not ours: wrong length, wrong magic, a sequence never sent */
  CHECK(!gw_quality_pong(&q, p, 7, 500, &rtt));
  unsigned char bad[GW_QUALITY_PAYLOAD];
  memcpy(bad, p, sizeof bad);
  bad[7] ^= 1;
  CHECK(!gw_quality_pong(&q, bad, sizeof bad, 500, &rtt));
  uint32_t future = 99;
  memcpy(bad, p, sizeof bad);
  memcpy(bad, &future, 4);
  CHECK(!gw_quality_pong(&q, bad, sizeof bad, 500, &rtt));
  CHECK(!gw_quality_pong(&q, "", 0, 500, &rtt)); /* a client's own empty pong */
  /* pushed out of the window by 20 newer pings: too old to count */
  unsigned char second[GW_QUALITY_PAYLOAD];
  memcpy(second, p, sizeof second);
  uint32_t one = 1;
  memcpy(second, &one, 4);
  for (int i = 0; i < 20; i++) gw_quality_ping(&q, 1000 + i * 100.0, p);
  CHECK(!gw_quality_pong(&q, second, sizeof second, 4000, &rtt));
  /* Engine.IO style: answer the latest by sequence number */
  CHECK(gw_quality_pong_seq(&q, q.pings - 1, 3000, &rtt));
  NEAR(rtt, 100);
  gw_quality_report_t r;
  gw_quality_measure(&q, 3000, 1000, &r);
  CHECK_EQ_INT(r.answered + r.lost + r.pending, GW_QUALITY_PING_WINDOW);
}

/* Timestamps kept in 10 us units wrap after 11.9 h; differences stay right across it. */
static void test_wraparound(void) {
  gw_quality_t q;
  gw_quality_init(&q, 0);
  double t = 4294967296.0 / 100.0 - 1; /* 1 ms before the wrap */
  unsigned char p[GW_QUALITY_PAYLOAD];
  gw_quality_ping(&q, t, p);
  double rtt;
  CHECK(gw_quality_pong(&q, p, sizeof p, t + 3.5, &rtt));
  NEAR(rtt, 3.5);
  gw_quality_ping(&q, t + 10, p);
  gw_quality_report_t r;
  gw_quality_measure(&q, t + 10 + 6000, 5000, &r);
  CHECK_EQ_INT(r.lost, 1);
}

static void test_thresholds(void) {
  gw_quality_report_t r;
  memset(&r, 0, sizeof r);
  r.has_latency = 1;
  r.stability = 100;
  struct {
    double latency, loss;
    gw_quality_class_t want;
  } cases[] = {
      {0.2, 0, GW_QUALITY_EXCELLENT}, {99.9, 0, GW_QUALITY_EXCELLENT}, {100, 0, GW_QUALITY_GOOD},
      {50, 1, GW_QUALITY_GOOD},       {299, 1.9, GW_QUALITY_GOOD},     {300, 0, GW_QUALITY_FAIR},
      {50, 2, GW_QUALITY_FAIR},       {999, 9.9, GW_QUALITY_FAIR},     {1000, 0, GW_QUALITY_POOR},
      {5, 10, GW_QUALITY_POOR},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    r.latency_ms = cases[i].latency;
    r.loss_pct = cases[i].loss;
    if (!CHECK_EQ_INT(gw_quality_classify(&r, DEF), cases[i].want))
      fprintf(stderr, "  case latency %g loss %g\n", cases[i].latency, cases[i].loss);
  }
  /* the policy's own thresholds, stability included */
  gw_quality_threshold_t strict[3] = {{50, 0, 100}, {150, 1, 60}, {400, 5, 0}};
  r.latency_ms = 20;
  r.loss_pct = 0;
  CHECK_EQ_INT(gw_quality_classify(&r, strict), GW_QUALITY_EXCELLENT);
  r.stability = 80;
  CHECK_EQ_INT(gw_quality_classify(&r, strict), GW_QUALITY_GOOD);
  r.stability = 40;
  CHECK_EQ_INT(gw_quality_classify(&r, strict), GW_QUALITY_FAIR);
  r.latency_ms = 400;
  CHECK_EQ_INT(gw_quality_classify(&r, strict), GW_QUALITY_POOR);
  CHECK_STR(gw_quality_name(GW_QUALITY_POOR), "poor");
  CHECK_STR(gw_quality_name(GW_QUALITY_UNKNOWN), "unknown");
}

static void test_stability(void) {
  gw_quality_clear();
  const double min = 60000, window = 5 * min;
  CHECK_EQ_INT(gw_quality_reconnects("ann", 0, 0, window), 0);
  /* ann's link drops twice; a third connection opens after the second drop */
  gw_quality_identity_closed("ann", 1 * min);
  gw_quality_identity_closed("ann", 2 * min);
  double opened = 2 * min + 500;
  CHECK_EQ_INT(gw_quality_reconnects("ann", opened, opened, window), 2);
  NEAR(gw_quality_stability(2), 60);
  /* a close after this connection opened (another tab) is not its reconnect */
  gw_quality_identity_closed("ann", 3 * min);
  CHECK_EQ_INT(gw_quality_reconnects("ann", opened, 3 * min, window), 2);
  /* the window moves on */
  CHECK_EQ_INT(gw_quality_reconnects("ann", opened, 6.5 * min, window), 1);
  CHECK_EQ_INT(gw_quality_reconnects("ann", opened, 7.5 * min, window), 0);
  CHECK_EQ_INT(gw_quality_reconnects("bob", opened, opened, window), 0);
  NEAR(gw_quality_stability(0), 100);
  NEAR(gw_quality_stability(5), 0);
  NEAR(gw_quality_stability(50), 0);
  /* many closes: the last GW_QUALITY_IDENTITY_CLOSES are remembered */
  for (int i = 0; i < 20; i++) gw_quality_identity_closed("cy", 10 * min + i);
  CHECK_EQ_INT(gw_quality_reconnects("cy", 11 * min, 11 * min, window), GW_QUALITY_IDENTITY_CLOSES);
  /* the sweep forgets identities with nothing in the window */
  CHECK_EQ_INT(gw_quality_identities(), 2);
  CHECK_EQ_INT(gw_quality_sweep(9 * min, window), 1); /* ann: last close at 3 min */
  CHECK_EQ_INT(gw_quality_identities(), 1);
  CHECK_EQ_INT(gw_quality_sweep(16 * min, window), 1);
  CHECK_EQ_INT(gw_quality_identities(), 0);
  gw_quality_clear();
}

static void test_json(void) {
  gw_quality_report_t r;
  memset(&r, 0, sizeof r);
  r.quality = GW_QUALITY_GOOD;
  r.has_latency = 1;
  r.latency_ms = 123.456;
  r.jitter_ms = 4.04;
  r.loss_pct = 5;
  r.stability = 80;
  char buf[256];
  size_t n = gw_quality_json(&r, buf, sizeof buf);
  CHECK_STR(buf, "{\"quality\":\"good\",\"latency\":123.5,\"jitter\":4,\"packetLoss\":5,\"stability\":80}");
  CHECK_EQ_INT(n, strlen(buf));
  r.has_latency = 0;
  r.quality = GW_QUALITY_POOR;
  r.loss_pct = 100;
  gw_quality_json(&r, buf, sizeof buf);
  CHECK_STR(buf, "{\"quality\":\"poor\",\"packetLoss\":100,\"stability\":80}");
}

/* A client echoes the ping payload in its pong and lws checks a pong as UTF-8 once the
 * connection has sent text: every payload must be ASCII, for any sequence number, and a
 * pong must still match its ping. */
static void test_payload_is_ascii(void) {
  gw_quality_t q;
  gw_quality_init(&q, 0);
  int non_ascii = 0, unmatched = 0;
  for (int i = 0; i < 100000; i++) {
    unsigned char p[GW_QUALITY_PAYLOAD];
    gw_quality_ping(&q, i * 10.0, p);
    for (int k = 0; k < GW_QUALITY_PAYLOAD; k++)
      if (p[k] < 0x20 || p[k] > 0x7e) non_ascii++;
    double rtt;
    if (i % 1000 == 0 && !gw_quality_pong(&q, p, sizeof p, i * 10.0 + 5, &rtt)) unmatched++;
  }
  CHECK_EQ_INT(non_ascii, 0);
  CHECK_EQ_INT(unmatched, 0);
}

/* A new connection is classified as soon as its first ping is answered, not one check
 * interval later: the early check is due exactly then, and once it has run (a class set)
 * the interval takes over again. */
static void test_check_early_on_first_pong(void) {
  gw_quality_t q;
  gw_quality_init(&q, 5000);
  CHECK(!gw_quality_check_early(&q)); /* nothing measured */
  unsigned char p[GW_QUALITY_PAYLOAD];
  gw_quality_ping(&q, 5000, p);
  CHECK(!gw_quality_check_early(&q)); /* in flight */
  double rtt;
  CHECK(gw_quality_pong(&q, p, sizeof p, 5012, &rtt));
  CHECK(gw_quality_check_early(&q)); /* first answer: due now */
  /* what the check reports right then, 12 ms after opening: a class, not unknown */
  gw_quality_report_t r;
  gw_quality_measure(&q, 5012, 5000, &r);
  gw_quality_class_t cls = gw_quality_classify(&r, DEF);
  CHECK_EQ_INT(cls, GW_QUALITY_EXCELLENT);
  q.cls = (uint8_t)cls; /* as gw_quality_conn_check records it */
  gw_quality_ping(&q, 6000, p);
  CHECK(gw_quality_pong(&q, p, sizeof p, 6010, &rtt));
  CHECK(!gw_quality_check_early(&q)); /* classified: later pongs wait for the interval */
  /* a connection that was poor before any answer (only lost pings) is classified already */
  gw_quality_init(&q, 0);
  q.cls = GW_QUALITY_POOR;
  gw_quality_ping(&q, 0, p);
  CHECK(gw_quality_pong(&q, p, sizeof p, 10, &rtt));
  CHECK(!gw_quality_check_early(&q));
}

int main(void) {
  test_check_early_on_first_pong();
  test_payload_is_ascii();
  test_unknown_then_excellent();
  test_average_of_last_10();
  test_jitter();
  test_loss();
  test_late_and_foreign_pongs();
  test_wraparound();
  test_thresholds();
  test_stability();
  test_json();
  return check_done();
}
