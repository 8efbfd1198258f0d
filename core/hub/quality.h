/* Connection quality, measured by the server: RTT from its own WebSocket pings (the average
 * of the last 10 samples), jitter, unanswered pings as packet loss, and stability from the
 * reconnects of the same identity; a class (excellent/good/fair/poor) from the policy's
 * thresholds, re-evaluated every quality.check_interval seconds and, for a new connection,
 * as soon as its first ping is answered.
 *
 * The measurement state (gw_quality_t) is a plain struct inside each connection; the
 * functions on it are pure (tests drive them with their own clock). The gw_quality_conn_*
 * functions are the gateway side: metrics, the `connection:quality` event, the policy hook.
 * Protocols feed it: the /ws server embeds gw_quality_ping()'s 8-byte payload in its pings
 * and hands pongs to gw_quality_conn_pong(); Engine.IO (whose pongs carry no payload) calls
 * gw_quality_ping() when it sends a ping packet and gw_quality_conn_pong_seq() with the
 * sequence number of its latest ping when the pong packet arrives. */
#ifndef GW_QUALITY_H
#define GW_QUALITY_H

#include <stddef.h>
#include <stdint.h>

#include "settings.h"

#define GW_QUALITY_RTT_SAMPLES 10 /* latency = average of the last 10 round trips */
#define GW_QUALITY_PING_WINDOW 20 /* packet loss = unanswered share of the last 20 pings */
#define GW_QUALITY_PAYLOAD 12     /* bytes of ping payload: 8 hex digits of the sequence + "aivq" */
#define GW_QUALITY_IDENTITY_CLOSES 8 /* closes remembered per identity, for stability */

typedef enum {
  GW_QUALITY_UNKNOWN = 0, /* not measured yet */
  GW_QUALITY_EXCELLENT,
  GW_QUALITY_GOOD,
  GW_QUALITY_FAIR,
  GW_QUALITY_POOR,
  GW_QUALITY_CLASSES
} gw_quality_class_t;

/* excellent, good, fair: the defaults of the old service's indicator */
#define GW_QUALITY_DEFAULT_THRESHOLDS {{100, 0, 0}, {300, 2, 0}, {1000, 10, 0}}

typedef struct gw_quality {
  double opened_ms, last_check_ms;
  float rtt[GW_QUALITY_RTT_SAMPLES]; /* ms, a ring */
  uint32_t ping_at[GW_QUALITY_PING_WINDOW]; /* send times in 10 us units (wrapping), a ring */
  uint32_t pings;    /* pings sent; the next one's sequence number */
  uint32_t answered; /* bit i: ping (pings - 1 - i) was answered */
  uint8_t nrtt, rtt_next;
  /* the last check: what conn.quality and the event report */
  uint8_t cls, stability, has_latency;
  float latency, jitter, loss;
} gw_quality_t;

typedef struct gw_quality_report {
  gw_quality_class_t quality;
  int has_latency;           /* no answered ping yet: latency and jitter are unknown */
  double latency_ms, jitter_ms;
  double loss_pct;           /* 0..100 */
  double stability;          /* 0..100 */
  unsigned samples, answered, lost, pending;
} gw_quality_report_t;

void gw_quality_init(gw_quality_t *q, double now_ms);
/* A ping goes out now: returns its sequence number and fills the payload to send with it. */
uint32_t gw_quality_ping(gw_quality_t *q, double now_ms, unsigned char payload[GW_QUALITY_PAYLOAD]);
/* A pong: 1 and the round trip when it answers one of the last GW_QUALITY_PING_WINDOW pings
 * for the first time; 0 for anything else (unsolicited, duplicate, too old, not ours). */
int gw_quality_pong(gw_quality_t *q, const void *payload, size_t len, double now_ms, double *rtt_ms);
int gw_quality_pong_seq(gw_quality_t *q, uint32_t seq, double now_ms, double *rtt_ms);
/* Latency, jitter and loss now: a ping unanswered after pong_timeout_ms is lost, a younger
 * one is pending (counted neither way). */
void gw_quality_measure(const gw_quality_t *q, double now_ms, double pong_timeout_ms,
                        gw_quality_report_t *r);
gw_quality_class_t gw_quality_classify(const gw_quality_report_t *r, const gw_quality_threshold_t t[3]);
/* 1 when a check is due now, ahead of the interval: the connection has its first round trip
 * and no class yet (the last check saw no sample). gw_quality_conn_pong* run it. */
int gw_quality_check_early(const gw_quality_t *q);
const char *gw_quality_name(gw_quality_class_t c);
/* 100 with no reconnect in the window, 20 less for each one, at least 0. */
double gw_quality_stability(unsigned reconnects);
/* {"quality":..,"latency":..,"jitter":..,"packetLoss":..,"stability":..}; latency and jitter
 * are left out while unknown. Returns the length. */
size_t gw_quality_json(const gw_quality_report_t *r, char *out, size_t cap);

/* Stability: when connections of an identity closed. */
void gw_quality_identity_closed(const char *user, double now_ms);
/* Closes of user's connections in (now - window, opened]: the reconnects that led to a
 * connection opened at opened_ms. */
unsigned gw_quality_reconnects(const char *user, double opened_ms, double now_ms, double window_ms);
/* Forgets identities with no close in the window; returns how many. */
size_t gw_quality_sweep(double now_ms, double window_ms);
size_t gw_quality_identities(void);
void gw_quality_clear(void);

#endif
