/* A connection's link quality (quality.h measures, this applies it to a connection): the
 * checks its keepalive runs, the pongs it gets, the `connection:quality` event, the gauge and
 * the observer the gateway registers for the policy's quality hook. */
#ifndef GW_CONN_QUALITY_H
#define GW_CONN_QUALITY_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "quality.h"

/* Called by the connection's keepalive timer. When a check is due, classifies the connection
 * (on a change: gauge, `connection:quality` event, the policy's hook) and returns 1: send a
 * measurement ping now. */
int gw_quality_conn_tick(gw_conn_t *c, double now_ms);
/* Runs a check now (gw_quality_conn_tick does it when due). */
void gw_quality_conn_check(gw_conn_t *c, double now_ms);
/* A pong arrived (payload as sent by gw_quality_ping): records the sample and the histogram. */
void gw_quality_conn_pong(gw_conn_t *c, const void *payload, size_t len, double now_ms);
void gw_quality_conn_pong_seq(gw_conn_t *c, uint32_t seq, double now_ms);
/* The connection's report as of its last check (what conn.quality_info and the event say). */
void gw_quality_conn_report(const gw_conn_t *c, gw_quality_report_t *r);
/* The connection is gone: gauge, and its identity's close for the stability of later ones. */
void gw_quality_conn_closed(gw_conn_t *c, double now_ms);
/* Called when a connection's class changes, after connection:quality went out (old: the
 * previous class's name); the gateway registers the policy's quality hook here. NULL: none. */
void gw_quality_set_observer(void (*fn)(gw_conn_t *c, const char *old_class));

#endif
