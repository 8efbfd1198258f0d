#include "quality.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "log.h"
#include "stats.h"

#define W GW_QUALITY_PING_WINDOW
#define S GW_QUALITY_RTT_SAMPLES
static const unsigned char MAGIC[4] = {'a', 'i', 'v', 'q'};

/* Ping send times are kept as 32-bit counts of 10 us since the connection opened: they wrap
 * after 11.9 hours, and unsigned differences stay right as long as a ping in the window is
 * younger than that (check_interval is at most 600 s: 20 pings span 3.3 hours). */
static uint32_t units(const gw_quality_t *q, double now_ms) {
  double u = (now_ms - q->opened_ms) * 100.0;
  return (uint32_t)(uint64_t)(u > 0 ? u : 0);
}

void gw_quality_init(gw_quality_t *q, double now_ms) {
  memset(q, 0, sizeof *q);
  q->opened_ms = q->last_check_ms = now_ms;
  q->stability = 100;
}

uint32_t gw_quality_ping(gw_quality_t *q, double now_ms, unsigned char payload[GW_QUALITY_PAYLOAD]) {
  uint32_t seq = q->pings++;
  q->answered <<= 1; /* bit 0 is the new ping, not answered yet */
  q->ping_at[seq % W] = units(q, now_ms);
  /* ASCII on purpose: a client echoes the payload in its pong, and lws checks a pong's bytes
   * as UTF-8 once the connection has sent text (a raw counter failed with 1007 at ping 128) */
  char hex[9];
  snprintf(hex, sizeof hex, "%08x", seq);
  memcpy(payload, hex, 8);
  memcpy(payload + 8, MAGIC, 4);
  return seq;
}

int gw_quality_pong_seq(gw_quality_t *q, uint32_t seq, double now_ms, double *rtt_ms) {
  if (seq >= q->pings) return 0;
  uint32_t age = q->pings - 1 - seq;
  if (age >= W) return 0;
  uint32_t bit = 1u << age;
  if (q->answered & bit) return 0;
  q->answered |= bit;
  double rtt = (double)(uint32_t)(units(q, now_ms) - q->ping_at[seq % W]) / 100.0;
  q->rtt[q->rtt_next] = (float)rtt;
  q->rtt_next = (uint8_t)((q->rtt_next + 1) % S);
  if (q->nrtt < S) q->nrtt++;
  *rtt_ms = rtt;
  return 1;
}

int gw_quality_pong(gw_quality_t *q, const void *payload, size_t len, double now_ms, double *rtt_ms) {
  const unsigned char *p = payload;
  if (len != GW_QUALITY_PAYLOAD || memcmp(p + 8, MAGIC, 4) != 0) return 0;
  uint32_t seq = 0;
  for (int i = 0; i < 8; i++) {
    unsigned char ch = p[i];
    uint32_t d = ch >= '0' && ch <= '9' ? (uint32_t)(ch - '0') : ch >= 'a' && ch <= 'f' ? (uint32_t)(ch - 'a' + 10) : 16;
    if (d == 16) return 0;
    seq = seq << 4 | d;
  }
  return gw_quality_pong_seq(q, seq, now_ms, rtt_ms);
}

void gw_quality_measure(const gw_quality_t *q, double now_ms, double pong_timeout_ms,
                        gw_quality_report_t *r) {
  memset(r, 0, sizeof *r);
  r->stability = 100;
  uint32_t n = q->pings < W ? q->pings : W, now_u = units(q, now_ms);
  for (uint32_t age = 0; age < n; age++) {
    uint32_t seq = q->pings - 1 - age;
    if (q->answered & (1u << age)) r->answered++;
    else if ((double)(uint32_t)(now_u - q->ping_at[seq % W]) / 100.0 > pong_timeout_ms) r->lost++;
    else r->pending++;
  }
  r->loss_pct = r->answered + r->lost ? 100.0 * r->lost / (r->answered + r->lost) : 0;
  r->samples = q->nrtt;
  if (!q->nrtt) return;
  r->has_latency = 1;
  double sum = 0, jit = 0, prev = 0;
  for (unsigned i = 0; i < q->nrtt; i++) { /* oldest first, for the jitter */
    double x = q->rtt[(q->rtt_next + S - q->nrtt + i) % S];
    sum += x;
    if (i) jit += fabs(x - prev);
    prev = x;
  }
  r->latency_ms = sum / q->nrtt;
  r->jitter_ms = q->nrtt > 1 ? jit / (q->nrtt - 1) : 0;
}

gw_quality_class_t gw_quality_classify(const gw_quality_report_t *r, const gw_quality_threshold_t t[3]) {
  if (!r->has_latency) return r->lost ? GW_QUALITY_POOR : GW_QUALITY_UNKNOWN;
  for (int k = 0; k < 3; k++) {
    int loss_ok = t[k].loss_pct > 0 ? r->loss_pct < t[k].loss_pct : r->loss_pct <= 0;
    if (r->latency_ms < t[k].latency_ms && loss_ok && r->stability >= t[k].stability)
      return (gw_quality_class_t)(GW_QUALITY_EXCELLENT + k);
  }
  return GW_QUALITY_POOR;
}

int gw_quality_check_early(const gw_quality_t *q) {
  return q->cls == GW_QUALITY_UNKNOWN && q->nrtt > 0;
}

const char *gw_quality_name(gw_quality_class_t c) {
  static const char *const names[] = {"unknown", "excellent", "good", "fair", "poor"};
  return c < GW_QUALITY_CLASSES ? names[c] : "unknown";
}

double gw_quality_stability(unsigned reconnects) {
  return reconnects >= 5 ? 0 : 100.0 - 20.0 * reconnects;
}

static double round1(double x) { return round(x * 10) / 10; }

size_t gw_quality_json(const gw_quality_report_t *r, char *out, size_t cap) {
  int n;
  if (r->has_latency)
    n = snprintf(out, cap,
                 "{\"quality\":\"%s\",\"latency\":%.10g,\"jitter\":%.10g,\"packetLoss\":%.10g,"
                 "\"stability\":%.10g}",
                 gw_quality_name(r->quality), round1(r->latency_ms), round1(r->jitter_ms),
                 round1(r->loss_pct), round(r->stability));
  else
    n = snprintf(out, cap, "{\"quality\":\"%s\",\"packetLoss\":%.10g,\"stability\":%.10g}",
                 gw_quality_name(r->quality), round1(r->loss_pct), round(r->stability));
  if (n < 0) return 0;
  return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* ---- stability: recent closes per identity ------------------------------------------ */

typedef struct ident {
  double closes[GW_QUALITY_IDENTITY_CLOSES]; /* a ring */
  double last;
  uint8_t n, next;
  UT_hash_handle hh;
  char user[];
} ident_t;

static ident_t *g_idents, *g_icursor;

void gw_quality_identity_closed(const char *user, double now_ms) {
  ident_t *e;
  HASH_FIND_STR(g_idents, user, e);
  if (!e) {
    size_t len = strlen(user);
    if (!(e = calloc(1, sizeof *e + len + 1))) return;
    memcpy(e->user, user, len + 1);
    HASH_ADD_KEYPTR(hh, g_idents, e->user, len, e);
  }
  e->closes[e->next] = now_ms;
  e->next = (uint8_t)((e->next + 1) % GW_QUALITY_IDENTITY_CLOSES);
  if (e->n < GW_QUALITY_IDENTITY_CLOSES) e->n++;
  e->last = now_ms;
}

unsigned gw_quality_reconnects(const char *user, double opened_ms, double now_ms, double window_ms) {
  ident_t *e;
  HASH_FIND_STR(g_idents, user, e);
  if (!e) return 0;
  unsigned k = 0;
  for (unsigned i = 0; i < e->n; i++)
    if (e->closes[i] > now_ms - window_ms && e->closes[i] <= opened_ms) k++;
  return k;
}

size_t gw_quality_sweep(double now_ms, double window_ms) {
  size_t removed = 0, visited = 0;
  ident_t *e = g_icursor ? g_icursor : g_idents;
  while (e && visited++ < 10000) {
    ident_t *next = e->hh.next;
    if (e->last <= now_ms - window_ms) {
      HASH_DEL(g_idents, e);
      free(e);
      removed++;
    }
    e = next;
  }
  g_icursor = e;
  return removed;
}

size_t gw_quality_identities(void) { return HASH_COUNT(g_idents); }

void gw_quality_clear(void) {
  ident_t *e, *tmp;
  HASH_ITER(hh, g_idents, e, tmp) {
    HASH_DEL(g_idents, e);
    free(e);
  }
  g_icursor = NULL;
}

