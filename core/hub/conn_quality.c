#include "conn_quality.h"

#include <math.h>
#include <stdio.h>

#include "log.h"
#include "settings.h"
#include "stats.h"

static double round1(double x) { return round(x * 10) / 10; } /* as quality.c reports it */

static void (*g_observer)(gw_conn_t *c, const char *old_class);
void gw_quality_set_observer(void (*fn)(gw_conn_t *c, const char *old_class)) { g_observer = fn; }

static void gauge_add(gw_quality_class_t cls, double d) {
  if (cls != GW_QUALITY_UNKNOWN) gw_series_add(gw_metric_series1(gw_stats.quality, gw_quality_name(cls)), d);
}

void gw_quality_conn_check(gw_conn_t *c, double now_ms) {
  const gw_settings_t *s = gw_settings();
  gw_quality_t *q = &c->quality;
  q->last_check_ms = now_ms;
  gw_quality_report_t r;
  gw_quality_measure(q, now_ms, s->pong_timeout_s * 1000, &r);
  unsigned reconnects =
      c->user ? gw_quality_reconnects(c->user, q->opened_ms, now_ms, s->stability_window_s * 1000) : 0;
  r.stability = gw_quality_stability(reconnects);
  r.quality = gw_quality_classify(&r, s->quality);
  q->has_latency = (uint8_t)r.has_latency;
  q->latency = (float)r.latency_ms;
  q->jitter = (float)r.jitter_ms;
  q->loss = (float)r.loss_pct;
  q->stability = (uint8_t)r.stability;
  gw_quality_class_t old = (gw_quality_class_t)q->cls;
  if (r.quality == old) return;
  q->cls = (uint8_t)r.quality;
  gauge_add(old, -1);
  gauge_add(r.quality, 1);
  gw_log(GW_LOG_DEBUG, c->id, "link quality %s -> %s (latency %.1f ms, loss %.0f%%, %u reconnects)",
         gw_quality_name(old), gw_quality_name(r.quality), r.latency_ms, r.loss_pct, reconnects);
  char json[256];
  size_t len = gw_quality_json(&r, json, sizeof json);
  gw_conn_emit(c, "connection:quality", 18, json, len);
  if (g_observer) g_observer(c, gw_quality_name(old));
}

int gw_quality_conn_tick(gw_conn_t *c, double now_ms) {
  const gw_settings_t *s = gw_settings();
  if (!c->ready || s->quality_interval_s <= 0) return 0;
  /* the timer may run a little early: a check 10% early is still this check */
  if (now_ms - c->quality.last_check_ms < s->quality_interval_s * 1000 * 0.9) return 0;
  gw_quality_conn_check(c, now_ms);
  return 1;
}

static void sample(gw_conn_t *c, double rtt, double now_ms) {
  c->rtt_ms = rtt;
  c->pongs_received++;
  gw_series_observe(gw_stats.rtt, rtt / 1000);
  /* the first answer classifies at once: an indicator shows a class within one round
   * trip instead of "unknown" for a whole check interval */
  if (c->ready && gw_settings()->quality_interval_s > 0 && gw_quality_check_early(&c->quality))
    gw_quality_conn_check(c, now_ms);
}

void gw_quality_conn_pong(gw_conn_t *c, const void *payload, size_t len, double now_ms) {
  double rtt;
  if (gw_quality_pong(&c->quality, payload, len, now_ms, &rtt)) sample(c, rtt, now_ms);
}

void gw_quality_conn_pong_seq(gw_conn_t *c, uint32_t seq, double now_ms) {
  double rtt;
  if (gw_quality_pong_seq(&c->quality, seq, now_ms, &rtt)) sample(c, rtt, now_ms);
}

void gw_quality_conn_report(const gw_conn_t *c, gw_quality_report_t *r) {
  const gw_quality_t *q = &c->quality;
  memset(r, 0, sizeof *r);
  r->quality = (gw_quality_class_t)q->cls;
  r->has_latency = q->has_latency;
  r->latency_ms = round1(q->latency);
  r->jitter_ms = round1(q->jitter);
  r->loss_pct = round1(q->loss);
  r->stability = q->stability;
  r->samples = q->nrtt;
}

void gw_quality_conn_closed(gw_conn_t *c, double now_ms) {
  gauge_add((gw_quality_class_t)c->quality.cls, -1);
  c->quality.cls = GW_QUALITY_UNKNOWN;
  if (c->ready && c->user) gw_quality_identity_closed(c->user, now_ms);
}
